"""Typed, validated, immutable settings, built once at the edge (``replicator.cli``).

Nothing below the CLI reads the environment or argv: the engine receives a ``Settings`` and
nothing else. Every field says its unit and why its default is what it is. ``describe()``
renders the effective settings with secrets masked, for `replicator config` and the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from replicator.errors import ConfigError

DEFAULT_PREFIX = "/registry"
"""kube-apiserver's default ``--etcd-prefix``; OpenShift uses ``/kubernetes.io``."""

CHECKPOINT_KEY = "/etcd-replicator/checkpoint"
"""Destination key (outside any Kubernetes prefix) holding the last source revision committed."""


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """How to reach one etcd cluster."""

    endpoints: tuple[str, ...]
    """``host:port``, ``http://host:port`` or ``https://host:port``; several mean failover."""
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure_transport: bool = True
    """Plaintext gRPC. True by default like the seed tool; any TLS file or https:// turns it off."""
    insecure_skip_tls_verify: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.endpoints or any(not e.strip() for e in self.endpoints):
            raise ConfigError("endpoints: at least one non-empty host:port is required")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("cert and key must be given together (client certificate authentication)")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `replicator run` needs. Built by ``replicator.cli``; validated here."""

    source: EndpointSettings
    dest: EndpointSettings
    rules_file: Path
    encryption_provider_config: Path | None = None
    """Source kube-apiserver's ``--encryption-provider-config``; needed to read encrypted objects."""
    dest_encryption_provider_config: Path | None = None
    """The standby's EncryptionConfiguration: values it cannot read are re-encrypted with it."""
    kube_prefix: str = DEFAULT_PREFIX
    max_txn_ops: int = 128
    """etcd's default ``--max-txn-ops``; one destination transaction never holds more operations."""
    max_txn_bytes: int = 1_000_000
    """Bytes of keys+values per destination transaction: under etcd's 1.5 MiB request limit with room
    for the envelope."""
    inflight_txns: int = 8
    """Destination transactions in flight during the full sync (watch phase applies in order)."""
    page_size: int = 1000
    """Keys per source range page; bounds memory, since pages stream."""
    rev: int = 0
    """Start the watch at this source revision and skip the full sync (0: full sync first)."""
    once: bool = False
    new_epoch: bool = False
    """Start a new epoch with a full sync, also when the source changed or was restored."""
    """Full sync, remove managed keys no longer in scope, exit."""
    journal_url: str = ""
    journal_retention: int = 0
    """Keep decision rows for this many source revisions behind the checkpoint (0: keep all).
    Pruned every 10 minutes; the checkpoint, managed keys, epochs and runs are never pruned."""
    journal_values: bool = False
    """Keep copied values (as stored: encrypted stays encrypted) in the journal, for replay after
    the source has compacted them. Costs journal space roughly equal to the mirrored data."""
    state_dir: Path = Path(".replicator")
    dial_timeout: float = 2.0
    """Seconds to establish a connection (the seed's default)."""
    keepalive_time: float = 2.0
    keepalive_timeout: float = 6.0
    request_timeout: float = 10.0
    """Seconds for one unary etcd call; a stalled server surfaces as a retryable timeout."""
    services: str = "auto"
    """auto: copy Services only when both clusters' service CIDR and NodePort range match; copy; skip."""
    debug: bool = False
    log_format: str = "text"

    def __post_init__(self) -> None:
        if not self.kube_prefix.startswith("/") or (
            self.kube_prefix.endswith("/") and self.kube_prefix != "/"
        ):
            raise ConfigError(f"--kube-prefix: {self.kube_prefix!r} must start with '/' and not end with '/'")
        if not 1 <= self.max_txn_ops <= 10_000:
            raise ConfigError(f"--max-txn-ops: {self.max_txn_ops} is outside 1..10000")
        if self.max_txn_bytes < 64 * 1024:
            raise ConfigError(f"--max-txn-bytes: {self.max_txn_bytes} is below 65536")
        if not 1 <= self.inflight_txns <= 64:
            raise ConfigError(f"--inflight-txns: {self.inflight_txns} is outside 1..64")
        if not 1 <= self.page_size <= 100_000:
            raise ConfigError(f"--page-size: {self.page_size} is outside 1..100000")
        if self.journal_retention < 0:
            raise ConfigError(f"--journal-retention: {self.journal_retention} must be >= 0")
        if self.rev and self.once:
            raise ConfigError("--rev and --once: --once is a full sync and --rev skips it; choose one")
        if self.rev < 0:
            raise ConfigError(f"--rev: {self.rev} must be >= 0")
        if self.services not in ("auto", "copy", "skip"):
            raise ConfigError(f"--services: {self.services!r} is not auto, copy or skip")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"--log-format: {self.log_format!r} is not text or json")
        for name in ("dial_timeout", "keepalive_time", "keepalive_timeout", "request_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')}: must be > 0 seconds")
        if self.rules_file and not self.rules_file.is_file():
            raise ConfigError(f"--mirror-rule: {self.rules_file} does not exist or is not a file")
        for flag, cfg in (
            ("--encryption-provider-config", self.encryption_provider_config),
            ("--dest-encryption-provider-config", self.dest_encryption_provider_config),
        ):
            if cfg is not None and not cfg.is_file():
                raise ConfigError(f"{flag}: {cfg} does not exist or is not a file")
        for side, ep in (("source", self.source), ("dest", self.dest)):
            for attr in ("cacert", "cert", "key"):
                path = getattr(ep, attr)
                if path is not None and not path.is_file():
                    raise ConfigError(f"--{side}-{attr}: {path} does not exist or is not a file")


_SECRET_FIELDS = frozenset({"password"})


def describe(obj: Any, indent: str = "") -> str:
    """Render settings as ``name: value`` lines, secrets masked."""
    lines: list[str] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            lines.append(f"{indent}{f.name}:")
            lines.append(describe(value, indent + "  "))
        elif f.name in _SECRET_FIELDS and value:
            lines.append(f"{indent}{f.name}: ******")
        elif f.name == "journal_url":
            lines.append(f"{indent}{f.name}: {mask_url(str(value))}")
        else:
            lines.append(f"{indent}{f.name}: {value}")
    return "\n".join(lines)


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"
