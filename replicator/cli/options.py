"""`replicator run` options: the seed's flags, their aliases, a config file and the environment.

Precedence is defaults < config file < environment (``REPLICATOR_<FLAG>``) < flags. The seed tool
(etcd-carry, Go/cobra) spells durations like ``2s`` and booleans like ``--x=false``; both are
accepted so its users switch without touching their flags. ``--master-*`` / ``--slave-*`` are
aliases of ``--source-*`` / ``--dest-*``.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from replicator.config import DEFAULT_PREFIX, EndpointSettings, Settings
from replicator.errors import ConfigError

_SIDES = (("source", "master"), ("dest", "slave"))
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """Seconds from ``2s``, ``500ms``, ``1m30s`` (Go style) or a bare number of seconds."""
    text = str(text).strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 2s, 500ms, 1m)")
    return total


def boolean(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "t", "true", "yes", "on"):
        return True
    if value in ("0", "f", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true/false)")


# flag name -> (type, default, help)
_COMMON: dict[str, tuple[Any, Any, str]] = {
    "mirror-rule": (str, None, "rule file in the seed's (etcd-carry) YAML format"),
    "encryption-provider-config": (str, None, "the source kube-apiserver's EncryptionConfiguration"),
    "dest-encryption-provider-config": (
        str,
        None,
        "the standby's EncryptionConfiguration (re-encrypt for it)",
    ),
    "kube-prefix": (str, DEFAULT_PREFIX, "kube-apiserver --etcd-prefix"),
    "max-txn-ops": (int, 128, "operations per destination transaction (etcd --max-txn-ops)"),
    "max-txn-bytes": (int, 1_000_000, "bytes per destination transaction (under etcd's 1.5 MiB limit)"),
    "inflight-txns": (int, 8, "destination transactions in flight during the full sync"),
    "page-size": (int, 1000, "keys per source range page"),
    "rev": (int, 0, "start watching at this source revision, skipping the full sync"),
    "journal": (str, None, "SQLAlchemy URL of the journal (default: sqlite file in --state-dir)"),
    "state-dir": (str, ".replicator", "directory for the default SQLite journal"),
    "journal-retention": (
        int,
        0,
        "keep decision rows for this many revisions behind the checkpoint (0: all)",
    ),
    "dial-timeout": (duration, 2.0, "connection timeout (e.g. 2s)"),
    "keepalive-time": (duration, 2.0, "keepalive ping interval (e.g. 2s)"),
    "keepalive-timeout": (duration, 6.0, "keepalive ping timeout (e.g. 6s)"),
    "request-timeout": (duration, 10.0, "timeout of one etcd request (e.g. 10s)"),
    "log-format": (str, "text", "text or json"),
    "services": (str, "auto", "auto (copy Services only when both clusters use the same ranges), copy, skip"),
}
_BOOLS: dict[str, tuple[bool, str]] = {
    "once": (False, "full sync, remove managed keys no longer in scope, exit"),
    "debug": (False, "debug logging"),
    "new-epoch": (False, "start over with a full sync, also after the source changed or was restored"),
    "journal-values": (False, "keep copied values in the journal (for replay after compaction)"),
}
_SIDE_FIELDS: dict[str, tuple[Any, Any, str]] = {
    "endpoints": (str, None, "comma-separated etcd endpoints (several = failover)"),
    "cacert": (str, None, "CA bundle to verify the server"),
    "cert": (str, None, "client certificate (TLS client auth)"),
    "key": (str, None, "client certificate's key"),
    "user": (str, None, "etcd user name (password from --{side}-password or REPLICATOR_{SIDE}_PASSWORD)"),
    "password": (str, None, "etcd password (prefer the environment variable)"),
}
_SIDE_BOOLS: dict[str, tuple[bool | None, str]] = {
    "insecure-transport": (None, "plaintext gRPC (default: true unless TLS files or https:// are given)"),
    "insecure-skip-tls-verify": (False, "accept any server certificate (testing only)"),
}


def _dest(flag: str) -> str:
    return flag.replace("-", "_")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML file of options (keys are flag names without --)")
    for name, (_type, _default, text) in _COMMON.items():
        p.add_argument(f"--{name}", dest=_dest(name), default=None, help=text, metavar="VALUE")
    for name, (_default, text) in _BOOLS.items():
        p.add_argument(
            f"--{name}", dest=_dest(name), nargs="?", const="true", default=None, help=text, metavar="BOOL"
        )
    for side, alias in _SIDES:
        for name, (_type, _default, text) in _SIDE_FIELDS.items():
            flags = [f"--{side}-{name}", f"--{alias}-{name}"]
            p.add_argument(
                *flags,
                dest=_dest(f"{side}-{name}"),
                default=None,
                metavar="VALUE",
                help=text.replace("{side}", side).replace("{SIDE}", side.upper()),
            )
        for name, (_default, text) in _SIDE_BOOLS.items():
            p.add_argument(
                f"--{side}-{name}",
                f"--{alias}-{name}",
                dest=_dest(f"{side}-{name}"),
                nargs="?",
                const="true",
                default=None,
                metavar="BOOL",
                help=text,
            )


def _known_keys() -> dict[str, Any]:
    """Every option name (flag spelling without --) -> its converter."""
    keys: dict[str, Any] = {n: t for n, (t, _, _) in _COMMON.items()}
    keys.update({n: boolean for n in _BOOLS})
    for side, _alias in _SIDES:
        keys.update({f"{side}-{n}": t for n, (t, _, _) in _SIDE_FIELDS.items()})
        keys.update({f"{side}-{n}": boolean for n in _SIDE_BOOLS})
    return keys


def _aliases(name: str) -> str:
    for side, alias in _SIDES:
        if name.startswith(f"{alias}-"):
            return side + name[len(alias) :]
    return name


def _convert(origin: str, name: str, value: Any, converters: Mapping[str, Any]) -> Any:
    conv = converters[name]
    try:
        return conv(value) if conv is not str else str(value)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def _from_file(path: str, converters: Mapping[str, Any]) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"--config: {path} must be a mapping of option names to values")
    out: dict[str, Any] = {}
    for raw, value in doc.items():
        name = _aliases(str(raw).lstrip("-"))
        if name not in converters:
            raise ConfigError(f"{path}: unknown option {raw!r}")
        out[name] = _convert(f"{path}: {raw}", name, value, converters)
    return out


def _from_env(env: Mapping[str, str], converters: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in converters:
        var = "REPLICATOR_" + name.upper().replace("-", "_")
        if var in env:
            out[name] = _convert(f"${var}", name, env[var], converters)
    return out


def _from_flags(ns: argparse.Namespace, converters: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in converters:
        value = getattr(ns, _dest(name), None)
        if value is not None:
            out[name] = _convert(f"--{name}", name, value, converters)
    return out


def settings_from(
    ns: argparse.Namespace, env: Mapping[str, str] | None = None, *, need_dest: bool = True
) -> Settings:
    """Merge defaults < file < environment < flags into a validated ``Settings``.

    Read-only commands (dry run, explain) pass ``need_dest=False``: the destination is not used.
    """
    converters = _known_keys()
    merged: dict[str, Any] = {n: d for n, (_, d, _) in _COMMON.items()}
    merged.update({n: d for n, (d, _) in _BOOLS.items()})
    if getattr(ns, "config", None):
        merged.update(_from_file(ns.config, converters))
    merged.update(_from_env(os.environ if env is None else env, converters))
    merged.update(_from_flags(ns, converters))
    if not merged.get("mirror-rule"):
        raise ConfigError("--mirror-rule: a rule file is required")
    if not need_dest and not merged.get("dest-endpoints"):
        merged["dest-endpoints"] = merged.get("source-endpoints")
    sides = {side: _endpoint(side, merged) for side, _ in _SIDES}

    def opt(name: str) -> Any:
        return merged.get(name)

    return Settings(
        source=sides["source"],
        dest=sides["dest"],
        rules_file=Path(opt("mirror-rule")),
        encryption_provider_config=Path(opt("encryption-provider-config"))
        if opt("encryption-provider-config")
        else None,
        dest_encryption_provider_config=_path(opt("dest-encryption-provider-config")),
        kube_prefix=opt("kube-prefix"),
        max_txn_ops=opt("max-txn-ops"),
        max_txn_bytes=opt("max-txn-bytes"),
        inflight_txns=opt("inflight-txns"),
        page_size=opt("page-size"),
        rev=opt("rev"),
        once=opt("once"),
        new_epoch=opt("new-epoch"),
        journal_url=opt("journal") or "",
        journal_values=opt("journal-values"),
        journal_retention=opt("journal-retention"),
        state_dir=Path(opt("state-dir")),
        dial_timeout=opt("dial-timeout"),
        keepalive_time=opt("keepalive-time"),
        keepalive_timeout=opt("keepalive-timeout"),
        request_timeout=opt("request-timeout"),
        debug=opt("debug"),
        log_format=opt("log-format"),
        services=opt("services"),
    )


def _path(value: Any) -> Path | None:
    return Path(value) if value else None


def _endpoint(side: str, merged: Mapping[str, Any]) -> EndpointSettings:
    def get(name: str) -> Any:
        return merged.get(f"{side}-{name}")

    raw = get("endpoints")
    if not raw:
        raise ConfigError(f"--{side}-endpoints: required (comma-separated host:port list)")
    endpoints = tuple(e.strip() for e in str(raw).split(",") if e.strip())
    tls = any(get(n) for n in ("cacert", "cert", "key")) or any(e.startswith("https://") for e in endpoints)
    insecure = get("insecure-transport")
    if insecure is None:
        insecure = not tls
    if insecure and any(e.startswith("https://") for e in endpoints):
        raise ConfigError(f"--{side}-insecure-transport: true contradicts https:// endpoints")

    def path(name: str) -> Path | None:
        return Path(get(name)) if get(name) else None

    try:
        return EndpointSettings(
            endpoints=endpoints,
            cacert=path("cacert"),
            cert=path("cert"),
            key=path("key"),
            insecure_transport=bool(insecure),
            insecure_skip_tls_verify=bool(get("insecure-skip-tls-verify")),
            username=get("user"),
            password=get("password"),
        )
    except ConfigError as exc:
        raise ConfigError(f"--{side}-*: {exc}") from None
