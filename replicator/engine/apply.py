"""Turning evaluations into destination work, shared by the full sync and the watch.

``Applier.apply_page`` takes source key-values (a range page, or the puts of a namespace re-scan),
evaluates each, looks up in one query which of the skipped ones this replicator manages, and
hands puts/deletes/notes to the writer. Only managed keys are ever deleted.
"""

from __future__ import annotations

from collections.abc import Sequence

from replicator.errors import BadValue
from replicator.etcd import KeyValue
from replicator.journal import DecisionRecord
from replicator.kube.resources import KeyInfo
from replicator.observability import get_logger

from .evaluate import Evaluation, Evaluator, Verdict
from .retry import waiting_for_kms
from .sink import JournalSink
from .writer import DestWriter, digest

log = get_logger("apply")


class Applier:
    def __init__(self, *, evaluator: Evaluator, sink: JournalSink, writer: DestWriter) -> None:
        self.evaluator = evaluator
        self.sink = sink
        self.writer = writer
        self.failed_managed: set[str] = set()
        """Managed keys whose current source value could not be read: the full sync keeps them."""

    async def managed_among(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` this replicator manages: decisions in flight first, then the journal."""
        state = self.writer.managed_state
        known = {k: state(k) for k in keys}
        unknown = [k for k, v in known.items() if v is None]
        found = await self.sink.managed(unknown) if unknown else {}
        return {k for k, v in known.items() if v or (v is None and k in found)}

    async def evaluate(self, kv: KeyValue, info: KeyInfo | None = None) -> Evaluation:
        """Evaluate one key-value; a KMS plugin outage makes it wait instead of failing the value."""
        ev = self.evaluator
        if info is None:
            return await waiting_for_kms(lambda: ev.evaluate(kv.key, kv.value, lease=kv.lease))
        found = info
        return await waiting_for_kms(lambda: ev.evaluate_info(found, kv.value, lease=kv.lease))

    async def apply_kvs(self, kvs: Sequence[KeyValue], *, revision: int | None = None) -> None:
        """Evaluate and apply puts. ``revision`` overrides each kv's mod_revision in the journal."""
        evaluations = [await self.evaluate(kv) for kv in kvs]
        not_copied = [
            kv.key.decode() for kv, ev in zip(kvs, evaluations, strict=True) if ev.verdict is not Verdict.COPY
        ]
        managed = await self.managed_among(not_copied) if not_copied else set()
        for kv, ev in zip(kvs, evaluations, strict=True):
            await self.apply_one(
                kv, ev, managed=kv.key.decode() in managed, revision=revision or kv.mod_revision
            )

    async def apply_one(self, kv: KeyValue, ev: Evaluation, *, managed: bool, revision: int) -> None:
        key = kv.key.decode()
        w = self.writer
        if ev.verdict is Verdict.COPY and ev.info is not None:
            try:
                info = ev.info
                out = await waiting_for_kms(lambda: self.evaluator.transcoder.output(info, kv.value))
            except BadValue as exc:
                ev = Evaluation(Verdict.FAIL, exc.reason, info=ev.info)
        if ev.verdict is Verdict.COPY:
            d = digest(kv.value)
            rec = DecisionRecord(
                revision=revision,
                key=key,
                action="copy",
                reason=ev.reason,
                rule=ev.rule,
                value_digest=d,
                value_size=len(kv.value),
            )
            await w.put(kv.key, out, record=rec, rule=ev.rule, source_value=kv.value)
        elif ev.verdict is Verdict.IGNORE:
            await w.note(DecisionRecord(revision=revision, key=key, action="ignore", reason=ev.reason))
        elif ev.verdict is Verdict.FAIL:
            log.warning("cannot read value, skipped: %s", ev.reason, extra={"key": key, "revision": revision})
            await w.note(
                DecisionRecord(
                    revision=revision, key=key, action="fail", reason=ev.reason, value_size=len(kv.value)
                )
            )
            if managed:
                # Keep the last good copy on the standby: a bad value must not prune a good one.
                self.failed_managed.add(key)
        elif managed:
            rec = DecisionRecord(
                revision=revision, key=key, action="delete", reason=f"left scope: {ev.reason}", rule=ev.rule
            )
            await w.delete(kv.key, record=rec)
        else:
            await w.note(
                DecisionRecord(revision=revision, key=key, action="skip", reason=ev.reason, rule=ev.rule)
            )

    async def apply_delete(self, key: bytes, *, revision: int, managed: bool, reason: str) -> None:
        skey = key.decode()
        if managed:
            rec = DecisionRecord(revision=revision, key=skey, action="delete", reason=reason)
            await self.writer.delete(key, record=rec)
        else:
            await self.writer.note(
                DecisionRecord(
                    revision=revision,
                    key=skey,
                    action="skip",
                    reason=f"{reason}; not written by this replicator",
                )
            )
