"""Read-only views of what the rules select: a dry run over the whole source, and one key explained.

Neither writes anything anywhere (no destination, no journal): they build the same evaluator as
`replicator run`, read the source at its current revision, and report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from replicator.config import Settings
from replicator.etcd import EtcdClient
from replicator.kube.encryption import EncryptionConfig
from replicator.kube.resources import ResourceCatalog
from replicator.rules.loader import load_rules

from .evaluate import Evaluation, Evaluator, NamespaceIndex, Verdict
from .fullsync import load_context
from .streams import scan
from .transcode import Transcoder


def build_evaluator(settings: Settings) -> Evaluator:
    """Rules, encryption configs and the key table: everything that can fail on bad input."""
    rules = load_rules(settings.rules_file)
    cfg, dest_cfg = settings.encryption_provider_config, settings.dest_encryption_provider_config
    enc = EncryptionConfig.load(cfg) if cfg else None
    dest_enc = EncryptionConfig.load(dest_cfg) if dest_cfg else None
    evaluator = Evaluator(
        catalog=ResourceCatalog(settings.kube_prefix),
        rules=rules,
        encryption=enc,
        namespaces=NamespaceIndex(),
        transcoder=Transcoder(source=enc, dest=dest_enc),
    )
    return evaluator


@dataclass
class DryRunReport:
    revision: int
    verdicts: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    by_resource: Counter[tuple[str, str]] = field(default_factory=Counter)  # (resource, verdict)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (key, reason), first 100


async def dry_run(settings: Settings, source: EtcdClient) -> DryRunReport:
    evaluator = build_evaluator(settings)
    revision = (await source.status()).header.revision
    await load_context(source, evaluator, revision=revision, page_size=settings.page_size)
    report = DryRunReport(revision=revision)
    for rt in evaluator.types_for():
        prefix = evaluator.catalog.key_prefix(rt).encode()
        name = f"{rt.resource}.{rt.group}" if rt.group else rt.resource
        async for page in scan(source, prefix, revision=revision, page_size=settings.page_size):
            for kv in page.kvs:
                ev = evaluator.evaluate(kv.key, kv.value, lease=kv.lease)
                report.verdicts[ev.verdict.value] += 1
                report.by_resource[(name, ev.verdict.value)] += 1
                if ev.rule and ev.verdict is Verdict.COPY:
                    report.by_rule[ev.rule] += 1
                if ev.verdict is Verdict.FAIL and len(report.failures) < 100:
                    report.failures.append((kv.key.decode(errors="replace"), ev.reason))
    return report


async def explain(settings: Settings, source: EtcdClient, key: str) -> tuple[Evaluation, bool]:
    """Why ``key`` is in or out of scope now; the flag says whether the key exists on the source."""
    evaluator = build_evaluator(settings)
    revision = (await source.status()).header.revision
    await load_context(source, evaluator, revision=revision, page_size=settings.page_size)
    kv = await source.get(key.encode())
    if kv is None:
        info = evaluator.parse(key.encode())
        reason = "not a Kubernetes object key" if info is None else "no such key on the source"
        return Evaluation(Verdict.IGNORE if info is None else Verdict.SKIP, reason, info=info), False
    return evaluator.evaluate(kv.key, kv.value, lease=kv.lease), True
