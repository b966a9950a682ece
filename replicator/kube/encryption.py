"""Encryption at rest, as kube-apiserver's ``--encryption-provider-config`` defines it.

``EncryptionConfig.load`` reads either form (``EncryptionConfiguration`` in
``apiserver.config.k8s.io/v1``, or the legacy ``EncryptionConfig`` in ``v1``) and validates every
key up front. Resource matching follows kube-apiserver: an exact ``resource.group`` entry wins,
then ``*.group``, then ``*.*``; a resource listed twice gets the providers of both entries, in
order; an entry masked by an earlier wildcard is an error, as it is for the apiserver.

Decryption tries every key whose ``k8s:enc:<provider>:v1:<name>:`` prefix matches the value
(for ``kms`` providers: ``k8s:enc:kms:<v1|v2>:<provider name>:``, opened through the plugin),
across the providers configured for the resource (key rotation), and accepts a result only if it
looks like a stored object (protobuf, JSON or CBOR). aesgcm authenticates the full etcd key, so
decrypting a value under another key fails, and ``encrypt`` binds the destination key.

KMS plugins are reached lazily, on the first value that needs one, with the provider's timeout;
an unreachable plugin raises ``KmsUnavailable`` (retryable), not ``DecryptError``. The calls are
synchronous (see ``kms.client``). ``close()`` closes the plugin channels.

Errors name the file, field, provider and key name, never key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.secret
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from replicator.errors import DecryptError, EncryptionConfigError
from replicator.kube.kms import EnvelopeError, KmsClient, KmsEnvelope, KmsRejected

ENC_PREFIX = b"k8s:enc:"
_KEY_SIZES = {"aescbc": (16, 24, 32), "aesgcm": (16, 24, 32), "secretbox": (32,)}
_LOOKS_DECODED = (b"k8s\x00", b"{", b"\xd9\xd9\xf7")


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    secret: bytes

    def __repr__(self) -> str:
        return f"Key(name={self.name!r}, secret=<{len(self.secret)} bytes>)"


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider entry: ``type`` is aescbc, aesgcm, secretbox, identity or kms."""

    type: str
    keys: tuple[Key, ...] = ()
    name: str = ""  # kms plugin name
    kms_api_version: str = ""  # kms: "v1" or "v2"
    endpoint: str = ""  # kms: unix:///path/to/socket
    timeout: float = 3.0  # kms: seconds per plugin call (kube-apiserver's default)
    cache_size: int = 1000  # kms: plaintext DEKs kept (kube-apiserver's v1 default)

    def prefix(self, key: Key | None = None) -> bytes:
        if self.type == "kms":
            return f"k8s:enc:kms:{self.kms_api_version}:{self.name}:".encode()
        assert key is not None
        return f"k8s:enc:{self.type}:v1:{key.name}:".encode()


@dataclass(frozen=True, slots=True)
class ResourceRule:
    resources: tuple[str, ...]
    providers: tuple[Provider, ...]


def _group_resource(entry: str) -> tuple[str, str]:
    """``deployments.apps`` -> ("apps", "deployments"); ``secrets`` -> ("", "secrets")."""
    resource, _, group = entry.partition(".")
    return group, resource


@dataclass(frozen=True, slots=True)
class EncryptionConfig:
    rules: tuple[ResourceRule, ...]
    source: str = "<memory>"
    _memo: dict[tuple[str, str], tuple[Provider, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _kms: dict[tuple[str, str], KmsEnvelope] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EncryptionConfig:
        name = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise EncryptionConfigError(f"{name}: cannot read ({exc.strerror})") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise EncryptionConfigError(f"{name}: not valid YAML ({type(exc).__name__})") from None
        return cls.from_dict(doc, source=name)

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "<memory>") -> EncryptionConfig:
        def fail(where: str, why: str) -> EncryptionConfigError:
            return EncryptionConfigError(f"{source}: {where}: {why}")

        if not isinstance(doc, dict):
            raise fail("document", "not a mapping")
        kind, api_version = doc.get("kind"), doc.get("apiVersion")
        if (kind, api_version) not in (
            ("EncryptionConfiguration", "apiserver.config.k8s.io/v1"),
            ("EncryptionConfig", "v1"),
        ):
            raise fail(
                "kind/apiVersion",
                f"expected EncryptionConfiguration in apiserver.config.k8s.io/v1 "
                f"or EncryptionConfig in v1, got {kind!r} in {api_version!r}",
            )
        entries = doc.get("resources")
        if not isinstance(entries, list) or not entries:
            raise fail("resources", "missing or empty")
        rules = []
        for i, entry in enumerate(entries):
            where = f"resources[{i}]"
            if not isinstance(entry, dict):
                raise fail(where, "not a mapping")
            names = entry.get("resources")
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
                raise fail(f"{where}.resources", "missing, empty or not a list of names")
            provs = entry.get("providers")
            if not isinstance(provs, list) or not provs:
                raise fail(f"{where}.providers", "missing or empty")
            providers = tuple(_provider(p, f"{where}.providers[{j}]", fail) for j, p in enumerate(provs))
            rules.append(ResourceRule(resources=tuple(names), providers=providers))
        config = cls(rules=tuple(rules), source=source)
        config._table(fail)  # reject masked entries now, as kube-apiserver does at start
        return config

    def _table(self, fail: Any = None) -> dict[tuple[str, str], tuple[Provider, ...]]:
        table: dict[tuple[str, str], tuple[Provider, ...]] = {}
        for i, rule in enumerate(self.rules):
            for name in rule.resources:
                group, resource = _group_resource(name)
                for mask in ((group, "*"), ("*", "*")):
                    if mask in table and mask != (group, resource) and fail is not None:
                        raise fail(f"resources[{i}].resources", f"{name!r} is masked by an earlier wildcard")
                table[(group, resource)] = table.get((group, resource), ()) + rule.providers
        return table

    def providers_for(self, group: str, resource: str) -> tuple[Provider, ...]:
        """Providers for a resource, writer first; empty means plaintext (identity)."""
        found = self._memo.get((group, resource))
        if found is None:
            table = self._table()
            candidates = ((group, resource), (group, "*"), ("*", "*"))
            found = next((table[c] for c in candidates if c in table), ())
            self._memo[(group, resource)] = found
        return found

    def decrypt(self, *, key: str, value: bytes, group: str, resource: str) -> bytes:
        """Plaintext of a stored value; a value without the ``k8s:enc:`` prefix is returned as is."""
        if not value.startswith(ENC_PREFIX):
            return value
        head = value[len(ENC_PREFIX) : len(ENC_PREFIX) + 300].split(b":")
        ptype = head[0].decode(errors="replace")
        keyname = head[2].decode(errors="replace") if len(head) > 2 else "?"
        tried = 0
        for provider in self.providers_for(group, resource):
            if provider.type != ptype:
                continue
            for k in provider.keys or (None,):
                prefix = provider.prefix(k)
                if not value.startswith(prefix):
                    continue
                tried += 1
                if k is None:
                    plain = self._kms_open(provider, value[len(prefix) :], key)
                else:
                    plain = _open(provider.type, k.secret, value[len(prefix) :], key.encode())
                if plain is not None and plain.lstrip(b" \t\r\n").startswith(_LOOKS_DECODED):
                    return plain
        if tried == 0:
            raise DecryptError(
                key,
                f"no {ptype} key named {keyname!r} configured for {resource}{'.' + group if group else ''}",
            )
        raise DecryptError(key, f"{ptype} key {keyname!r} does not decrypt this value ({tried} tried)")

    def _envelope(self, provider: Provider) -> KmsEnvelope:
        ident = (provider.kms_api_version, provider.name)
        env = self._kms.get(ident)
        if env is None:
            client = KmsClient(
                name=provider.name,
                endpoint=provider.endpoint,
                api_version=provider.kms_api_version,
                timeout=provider.timeout,
            )
            env = self._kms[ident] = KmsEnvelope(client, cache_size=provider.cache_size)
        return env

    def _kms_open(self, provider: Provider, data: bytes, key: str) -> bytes | None:
        """Plaintext, or None when this provider's DEK does not open it; KmsUnavailable passes."""
        try:
            return self._envelope(provider).open(data, aad=key.encode())
        except (EnvelopeError, KmsRejected):
            return None

    def close(self) -> None:
        """Close the KMS plugin channels (opened again on demand)."""
        for env in self._kms.values():
            env.client.close()
        self._kms.clear()

    def can_decrypt(self, value: bytes, *, key: str, group: str, resource: str) -> bool:
        try:
            self.decrypt(key=key, value=value, group=group, resource=resource)
        except DecryptError:
            return False
        return True

    def encrypt(self, *, key: str, plaintext: bytes, group: str, resource: str) -> bytes:
        """Encrypt with the resource's first provider and its first key, as kube-apiserver writes."""
        providers = self.providers_for(group, resource)
        if not providers or providers[0].type == "identity":
            return plaintext
        provider = providers[0]
        if provider.type == "kms":
            try:
                sealed = self._envelope(provider).seal(plaintext, aad=key.encode())
            except (EnvelopeError, KmsRejected) as exc:
                raise DecryptError(key, f"kms {provider.name}: cannot encrypt ({exc})") from None
            return provider.prefix() + sealed
        k = provider.keys[0]
        return provider.prefix(k) + _seal(provider.type, k.secret, plaintext, key.encode())


def is_encrypted(value: bytes) -> bool:
    return value.startswith(ENC_PREFIX)


def _provider(entry: Any, where: str, fail: Any) -> Provider:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise fail(where, "must name exactly one provider")
    ptype, body = next(iter(entry.items()))
    if ptype == "identity":
        return Provider(type="identity")
    if ptype == "kms":
        return _kms_provider(body, f"{where}.kms", fail)
    if ptype not in _KEY_SIZES:
        raise fail(where, f"unknown provider {ptype!r}")
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list) or not keys:
        raise fail(f"{where}.{ptype}.keys", "missing or empty")
    out = []
    for i, k in enumerate(keys):
        kw = f"{where}.{ptype}.keys[{i}]"
        if not isinstance(k, dict) or not isinstance(k.get("name"), str) or not k["name"]:
            raise fail(f"{kw}.name", "missing")
        if not isinstance(k.get("secret"), str):
            raise fail(f"{kw}.secret", "missing")
        try:
            secret = base64.b64decode(k["secret"], validate=True)
        except (binascii.Error, ValueError):
            raise fail(f"{kw}.secret", "not valid base64") from None
        if len(secret) not in _KEY_SIZES[ptype]:
            sizes = "/".join(str(s) for s in _KEY_SIZES[ptype])
            raise fail(f"{kw}.secret", f"{ptype} needs a {sizes}-byte key, got {len(secret)} bytes")
        out.append(Key(name=k["name"], secret=secret))
    return Provider(type=ptype, keys=tuple(out))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _go_duration(text: str) -> float | None:
    """Seconds in a Go duration string (``3s``, ``1m30s``, ``500ms``), or None if malformed."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _kms_provider(body: Any, where: str, fail: Any) -> Provider:
    """A ``kms`` entry: apiVersion (default v1, as kube-apiserver), name, endpoint, timeout,
    cachesize (v1 only; v2 caches by TTL in kube-apiserver, here by the same LRU)."""
    if not isinstance(body, dict):
        raise fail(where, "not a mapping")
    unknown = set(body) - {"apiVersion", "name", "endpoint", "timeout", "cachesize"}
    if unknown:
        raise fail(where, f"unknown field(s) {', '.join(sorted(unknown))}")
    name, api = body.get("name"), body.get("apiVersion", "v1")
    if not isinstance(name, str) or not name or ":" in name:
        raise fail(f"{where}.name", "missing or contains ':'")
    if api not in ("v1", "v2"):
        raise fail(f"{where}.apiVersion", f"must be v1 or v2, got {api!r}")
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith("unix://") or len(endpoint) <= len("unix://"):
        raise fail(f"{where}.endpoint", "missing or not unix:///path")
    timeout = _go_duration(str(body.get("timeout", "3s")))
    if timeout is None or timeout <= 0:
        raise fail(f"{where}.timeout", "not a positive duration like 3s")
    cachesize = body.get("cachesize", 1000)
    if not isinstance(cachesize, int) or isinstance(cachesize, bool):
        raise fail(f"{where}.cachesize", "not an integer")
    return Provider(
        type="kms",
        name=name,
        kms_api_version=api,
        endpoint=endpoint,
        timeout=timeout,
        cache_size=cachesize if cachesize > 0 else 1000,
    )


def _open(ptype: str, secret: bytes, data: bytes, aad: bytes) -> bytes | None:
    """Plaintext, or None when this key does not open the data."""
    try:
        if ptype == "aescbc":
            if len(data) < 32 or len(data) % 16:
                return None
            dec = Cipher(algorithms.AES(secret), modes.CBC(data[:16])).decryptor()
            padded = dec.update(data[16:]) + dec.finalize()
            unpad = padding.PKCS7(128).unpadder()
            return unpad.update(padded) + unpad.finalize()
        if ptype == "aesgcm":
            return AESGCM(secret).decrypt(data[:12], data[12:], aad)
        if ptype == "secretbox":
            return bytes(nacl.secret.SecretBox(secret).decrypt(data[24:], data[:24]))
    except (ValueError, InvalidTag, nacl.exceptions.CryptoError):
        return None
    return None


def _seal(ptype: str, secret: bytes, plaintext: bytes, aad: bytes) -> bytes:
    if ptype == "aescbc":
        iv = os.urandom(16)
        pad = padding.PKCS7(128).padder()
        enc = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
        return iv + enc.update(pad.update(plaintext) + pad.finalize()) + enc.finalize()
    if ptype == "aesgcm":
        nonce = os.urandom(12)
        return nonce + AESGCM(secret).encrypt(nonce, plaintext, aad)
    if ptype == "secretbox":
        nonce = os.urandom(24)
        return nonce + bytes(nacl.secret.SecretBox(secret).encrypt(plaintext, nonce).ciphertext)
    raise AssertionError(ptype)


def providers_summary(providers: Sequence[Provider]) -> str:
    """``aescbc[key1,key2], identity`` — names only, for logs and the effective-config printout."""

    def one(p: Provider) -> str:
        if p.type == "kms":
            return f"kms{p.kms_api_version}[{p.name}]"
        return f"{p.type}[{','.join(k.name for k in p.keys)}]" if p.keys else p.type

    return ", ".join(one(p) for p in providers)
