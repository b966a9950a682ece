"""KMS envelope encryption, byte for byte as kube-apiserver 1.37 (k8s.io/apiserver v0.37.2) does it.

After the ``k8s:enc:kms:v1:<name>:`` prefix (envelope/envelope.go):
    uint16 big-endian length of the encrypted DEK | encrypted DEK | data
where data is AES-GCM (12-byte nonce | ciphertext+tag, the etcd key as additional data) since
1.25, or AES-CBC (16-byte IV | ciphertext, PKCS#7, no key binding) as 1.24 and older wrote; reads
try GCM, then CBC. The DEK is 32 bytes, opened by the plugin's ``Decrypt``.

After ``k8s:enc:kms:v2:<name>:`` (envelope/kmsv2/envelope.go): a protobuf ``EncryptedObject``
{encryptedData, keyID, encryptedDEKSource, annotations, encryptedDEKSourceType}. For
``AES_GCM_KEY`` the plugin's plaintext is the DEK and encryptedData is ``nonce | ciphertext``; for
``HKDF_SHA256_XNONCE_AES_GCM_SEED`` (what 1.29+ writes: KMSv2KDF is locked on) it is a 32-byte seed,
encryptedData is ``info (32 random bytes) | nonce | ciphertext`` and the DEK is
``HKDF-Expand(SHA-256, seed, info)[:32]`` (aes/aes_extended_nonce.go). Both bind the etcd key as
AES-GCM additional data.

Plaintext DEKs and seeds are cached (LRU) by what the plugin was asked to open, so a cache hit
costs no gRPC call. Writes use one seed per envelope, regenerated after ``WRITE_SEED_TTL`` as
kube-apiserver rotates its write DEK source.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from google.protobuf.message import DecodeError as ProtoDecodeError

from replicator.kube.kms._generated import kmsv2_encrypted_object_pb2 as eo_pb2
from replicator.kube.kms.client import KmsClient

AES_GCM_KEY = 0
HKDF_SEED = 1
_INFO, _NONCE, _KEY = 32, 12, 32
WRITE_SEED_TTL = 180.0  # seconds; kube-apiserver's kmsv2PluginWriteDEKSourceMaxTTL is 3 minutes


class EnvelopeError(ValueError):
    """The value is malformed or does not open under its DEK (no plaintext or key in the message)."""


class _Lru:
    def __init__(self, size: int) -> None:
        self._size = max(size, 1)
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: bytes, value: bytes) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class KmsEnvelope:
    """Opens and seals values of one ``kms`` provider entry through its plugin client."""

    def __init__(self, client: KmsClient, *, cache_size: int = 1000) -> None:
        self.client = client
        self._cache = _Lru(cache_size)
        self._write: tuple[float, bytes, eo_pb2.EncryptedObject] | None = None
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------------------

    def open(self, data: bytes, *, aad: bytes) -> bytes:
        """Plaintext of ``data`` (the bytes after the provider prefix); raises ``KmsUnavailable``
        when the plugin is needed but unreachable, ``EnvelopeError``/``KmsRejected`` otherwise."""
        if self.client.api_version == "v1":
            return self._open_v1(data, aad)
        return self._open_v2(data, aad)

    def _open_v1(self, data: bytes, aad: bytes) -> bytes:
        if len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
            raise EnvelopeError("kms v1 value is shorter than its encrypted DEK length")
        n = int.from_bytes(data[:2], "big")
        enc_dek, body = data[2 : 2 + n], data[2 + n :]
        dek = self._cache.get(b"v1:" + enc_dek)
        if dek is None:
            dek = self.client.decrypt(enc_dek)
            if len(dek) not in (16, 24, 32):
                raise EnvelopeError("kms v1 plugin returned a DEK that is not an AES key")
            self._cache.put(b"v1:" + enc_dek, dek)
        plain = _gcm_open(dek, body, aad)
        if plain is None:
            plain = _cbc_open(dek, body)
        if plain is None:
            raise EnvelopeError("kms v1 value does not open under its DEK (AES-GCM nor AES-CBC)")
        return plain

    def _open_v2(self, data: bytes, aad: bytes) -> bytes:
        obj = eo_pb2.EncryptedObject()
        try:
            obj.ParseFromString(data)
        except ProtoDecodeError:
            raise EnvelopeError("kms v2 value is not an EncryptedObject") from None
        if not obj.encryptedData or not obj.encryptedDEKSource or not obj.keyID:
            raise EnvelopeError("kms v2 EncryptedObject lacks encryptedData, encryptedDEKSource or keyID")
        if obj.encryptedDEKSourceType not in (AES_GCM_KEY, HKDF_SEED):
            raise EnvelopeError(f"kms v2 encryptedDEKSourceType {obj.encryptedDEKSourceType} is unknown")
        cache_key = _cache_key(obj)
        source = self._cache.get(cache_key)
        if source is None:
            source = self.client.decrypt(
                obj.encryptedDEKSource, key_id=obj.keyID, annotations=dict(obj.annotations)
            )
            self._cache.put(cache_key, source)
        body = bytes(obj.encryptedData)
        if obj.encryptedDEKSourceType == HKDF_SEED:
            if len(source) < _KEY or len(body) < _INFO:
                raise EnvelopeError("kms v2 seed or encryptedData is too short")
            dek, body = _derive(source, body[:_INFO]), body[_INFO:]
        else:
            dek = source
        plain = _gcm_open(dek, body, aad)
        if plain is None:
            raise EnvelopeError("kms v2 value does not open under its DEK")
        return plain

    # -- writing ------------------------------------------------------------------------------

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """The bytes to put after the provider prefix, binding ``aad`` (the destination etcd key)."""
        if self.client.api_version == "v1":
            dek = os.urandom(_KEY)
            enc = self.client.encrypt(dek).ciphertext
            if len(enc) > 0xFFFF:
                raise EnvelopeError("kms v1 plugin returned an encrypted DEK longer than 65535 bytes")
            self._cache.put(b"v1:" + enc, dek)
            return len(enc).to_bytes(2, "big") + enc + _gcm_seal(dek, plaintext, aad)
        seed, template = self._write_state()
        info = os.urandom(_INFO)
        obj = eo_pb2.EncryptedObject()
        obj.CopyFrom(template)
        obj.encryptedData = info + _gcm_seal(_derive(seed, info), plaintext, aad)
        return obj.SerializeToString(deterministic=True)

    def _write_state(self) -> tuple[bytes, eo_pb2.EncryptedObject]:
        with self._lock:
            now = time.monotonic()
            if self._write is None or now - self._write[0] > WRITE_SEED_TTL:
                seed = os.urandom(_KEY)
                resp = self.client.encrypt(seed)
                if not resp.key_id or len(resp.key_id) > 1024 or not resp.ciphertext:
                    raise EnvelopeError("kms v2 plugin's Encrypt returned no key_id or no ciphertext")
                template = eo_pb2.EncryptedObject(
                    keyID=resp.key_id,
                    encryptedDEKSource=resp.ciphertext,
                    annotations=dict(resp.annotations),
                )
                template.encryptedDEKSourceType = eo_pb2.HKDF_SHA256_XNONCE_AES_GCM_SEED
                self._cache.put(_cache_key(template), seed)
                self._write = (now, seed, template)
            return self._write[1], self._write[2]


def _cache_key(obj: eo_pb2.EncryptedObject) -> bytes:
    """Everything the plugin's answer depends on, unambiguously length-prefixed."""
    parts = [bytes([obj.encryptedDEKSourceType]), bytes(obj.encryptedDEKSource), obj.keyID.encode()]
    for k in sorted(obj.annotations):
        parts += [k.encode(), bytes(obj.annotations[k])]
    return b"v2:" + b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _derive(seed: bytes, info: bytes) -> bytes:
    return HKDFExpand(algorithm=hashes.SHA256(), length=_KEY, info=info).derive(seed)


def _gcm_open(key: bytes, data: bytes, aad: bytes) -> bytes | None:
    if len(data) < _NONCE + 16:
        return None
    try:
        return AESGCM(key).decrypt(data[:_NONCE], data[_NONCE:], aad)
    except (InvalidTag, ValueError):
        return None


def _gcm_seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _cbc_open(key: bytes, data: bytes) -> bytes | None:
    if len(data) < 32 or len(data) % 16:
        return None
    try:
        dec = Cipher(algorithms.AES(key), modes.CBC(data[:16])).decryptor()
        padded = dec.update(data[16:]) + dec.finalize()
        unpad = padding.PKCS7(128).unpadder()
        return unpad.update(padded) + unpad.finalize()
    except ValueError:
        return None
