"""What the destination receives for a copied value: the source's bytes, or re-encrypted bytes.

Without ``--dest-encryption-provider-config`` every value is copied byte for byte (the standby must
use the primary's keys). With it, a value the standby's configuration can already read is still
copied verbatim; any other value is decrypted with the source configuration and encrypted with the
standby's first provider for its resource, which binds the (unchanged) etcd key where the provider
authenticates it. ``check`` proves at start, per encrypted resource in scope, that the standby's
configuration can read what will be written, so a misconfiguration stops the mirror before a
single unreadable value breaks the standby's LIST for a whole resource.
"""

from __future__ import annotations

from collections.abc import Iterable

from replicator.errors import ConfigError, DecryptError, ReplicatorError
from replicator.kube.encryption import EncryptionConfig, is_encrypted
from replicator.kube.resources import KeyInfo, ResourceType
from replicator.observability import get_logger

log = get_logger("transcode")

_PROBE = b"k8s\x00\x0a\x0e\x0a\x02v1\x12\x08Probe   "  # shaped like a stored object


class Transcoder:
    def __init__(self, *, source: EncryptionConfig | None, dest: EncryptionConfig | None) -> None:
        self.source = source
        self.dest = dest

    def output(self, info: KeyInfo, value: bytes) -> bytes:
        """The bytes to write for ``value``; raises ``BadValue`` when it cannot be made readable."""
        if self.dest is None:
            return value
        group, resource = info.resource.group, info.resource.resource
        encrypted = is_encrypted(value)
        providers = self.dest.providers_for(group, resource)
        writes_plain = not providers or providers[0].type == "identity"
        if not encrypted and writes_plain:
            return value
        if encrypted and self.dest.can_decrypt(value, key=info.key, group=group, resource=resource):
            return value  # the standby's keys read it as it is
        plain = value
        if encrypted:
            if self.source is None:
                raise DecryptError(
                    info.key, "value is encrypted and no --encryption-provider-config was given"
                )
            plain = self.source.decrypt(key=info.key, value=value, group=group, resource=resource)
        return self.dest.encrypt(key=info.key, plaintext=plain, group=group, resource=resource)

    def check(self, types: Iterable[ResourceType], *, prefix: str) -> None:
        """Refuse to start unless the standby can read what will be written for each type."""
        for rt in types:
            group, resource = rt.group, rt.resource
            src = self.source.providers_for(group, resource) if self.source else ()
            encrypted_at_source = bool(src) and src[0].type != "identity"
            if self.dest is None:
                if encrypted_at_source:
                    log.info(
                        "%s are encrypted at the source and copied verbatim: the standby's apiserver must "
                        "use the same EncryptionConfiguration keys",
                        _name(rt),
                    )
                continue
            dst = self.dest.providers_for(group, resource)
            if not dst and not encrypted_at_source:
                continue
            key = f"{prefix}/{rt.path}/replicator-probe"
            try:
                written = self.dest.encrypt(key=key, plaintext=_PROBE, group=group, resource=resource)
                back = self.dest.decrypt(key=key, value=written, group=group, resource=resource)
            except ReplicatorError as exc:  # a bad key, or a KMS plugin that cannot be reached
                raise ConfigError(
                    f"--dest-encryption-provider-config: cannot write {_name(rt)} readably for the "
                    f"standby: {getattr(exc, 'reason', exc)}"
                ) from None
            if back != _PROBE:
                raise ConfigError(
                    f"--dest-encryption-provider-config: {_name(rt)} would not read back on the standby"
                )


def _name(rt: ResourceType) -> str:
    return f"{rt.resource}.{rt.group}" if rt.group else rt.resource
