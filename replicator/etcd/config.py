"""How to reach an etcd cluster: ``ClientConfig`` and the gRPC channel built from it.

TLS files are read here, once, before any connection: a missing or unreadable file is a
``ConfigError`` naming the field and the path.

``insecure_skip_tls_verify``: grpc-python has no switch to turn certificate verification off
(``ssl_channel_credentials`` always verifies). The closest honest equivalent is implemented:
at dial time the client fetches the certificate the server presents (``ssl`` module, no
verification) and trusts exactly that certificate as the root, and takes the name to check from
that same certificate. So the connection is encrypted and pinned to whatever the server showed
at dial time (trust on first use), but nothing proves that server is the right one. It works
when the server certificate is self-signed or acceptable as its own trust anchor; a leaf whose
issuer is missing may still fail verification, in which case pass ``cacert``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc

from replicator.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Connection settings. Times are seconds; sizes bytes."""

    endpoints: tuple[str, ...]
    """"host:port", "http://host:port" or "https://host:port"; tried in order (failover)."""
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure_transport: bool | None = None
    """Plaintext gRPC. None: plaintext unless TLS files are given or a scheme is https."""
    insecure_skip_tls_verify: bool = False
    """Trust whatever certificate the server presents at dial time (see module docstring)."""
    username: str | None = None
    password: str | None = None
    dial_timeout: float = 2.0
    """First connection per endpoint; short, because the next endpoint is tried after it."""
    keepalive_time: float = 2.0
    """Ping an idle connection this often so a dead peer is noticed during a quiet watch."""
    keepalive_timeout: float = 6.0
    request_timeout: float = 10.0
    """Deadline of every unary call; longer than an etcd leader election (~1-2 s)."""
    max_receive_bytes: int = 64 * 1024 * 1024
    """Largest reply accepted; a range page must fit (Kubernetes objects can be ~1.5 MiB)."""

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ConfigError("etcd endpoints: at least one endpoint is needed")
        if (self.username is None) != (self.password is None):
            raise ConfigError("etcd user: username and password go together")
        if (self.cert is None) != (self.key is None):
            raise ConfigError("etcd cert/key: --cert and --key go together")

    @property
    def plaintext(self) -> bool:
        if self.insecure_transport is not None:
            return self.insecure_transport
        has_tls_files = any(f is not None for f in (self.cacert, self.cert, self.key))
        any_https = any(e.startswith("https://") for e in self.endpoints)
        return not (has_tls_files or any_https or self.insecure_skip_tls_verify)


def host_port(endpoint: str) -> str:
    """ "https://h:p" / "http://h:p" / "h:p" -> "h:p"."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if not parts.hostname or not parts.port:
            raise ConfigError(f"etcd endpoints: {endpoint!r} is not scheme://host:port")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return f"{host}:{parts.port}"
    if ":" not in endpoint:
        raise ConfigError(f"etcd endpoints: {endpoint!r} is not host:port")
    return endpoint


def _read(field: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"etcd {field}: cannot read {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    root: bytes | None
    cert: bytes | None
    key: bytes | None


def load_tls(config: ClientConfig) -> TlsMaterial | None:
    """Read the TLS files (or None for plaintext); raises ConfigError before any dialling."""
    material = TlsMaterial(
        root=_read("cacert", config.cacert),
        cert=_read("cert", config.cert),
        key=_read("key", config.key),
    )
    return None if config.plaintext else material


def _presented_certificate(target: str, timeout: float) -> tuple[bytes, str | None]:
    """The server's certificate (PEM) and a name in it that grpc can check the host against."""
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    pem = ssl.get_server_certificate((host, int(port)), timeout=timeout)
    ctx = ssl.create_default_context(cadata=pem)
    ctx.check_hostname = False
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    name: str | None = None
    try:
        import socket

        with (
            socket.create_connection((host, int(port)), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            peer = tls.getpeercert() or {}
        alt_names: tuple[tuple[str, str], ...] = peer.get("subjectAltName", ())  # type: ignore[assignment]
        sans = [value for kind, value in alt_names if kind in ("DNS", "IP Address")]
        name = str(sans[0]) if sans else None
    except (OSError, ssl.SSLError):
        name = None  # some servers demand a client cert here; grpc then checks the dialled host
    return pem.encode(), name


MIN_KEEPALIVE_TIME = 10.0  # seconds; the seed's 2 s default is raised to this, as grpc-go does


def make_channel(config: ClientConfig, endpoint: str, tls: TlsMaterial | None) -> grpc.aio.Channel:
    """One channel to one endpoint. Keepalive makes a silently dead peer fail a watch."""
    target = host_port(endpoint)
    options: list[tuple[str, int | str]] = [
        # etcd enforces a 5 s minimum between pings and no pings without a stream
        # (GOAWAY too_many_pings otherwise); like grpc-go, never ping more often than every 10 s.
        ("grpc.keepalive_time_ms", int(max(config.keepalive_time, MIN_KEEPALIVE_TIME) * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_receive_message_length", config.max_receive_bytes),
        ("grpc.enable_retries", 0),
    ]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    root = tls.root
    if config.insecure_skip_tls_verify:
        root, name = _presented_certificate(target, config.dial_timeout)
        if name:
            options.append(("grpc.ssl_target_name_override", name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=tls.key, certificate_chain=tls.cert
    )
    return grpc.aio.secure_channel(target, credentials, options=options)
