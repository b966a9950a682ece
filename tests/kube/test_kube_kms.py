"""KMS v1/v2 encryption at rest through a real gRPC plugin on a unix socket (tests/kube/kms_plugin.py).

The "apiserver layout" tests build values independently of ``replicator.kube.kms.envelope``, from
the layouts in k8s.io/apiserver v0.37.2 (envelope.go, kmsv2/envelope.go, aes_extended_nonce.go).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from kms_plugin import ANNOTATIONS, KEY_ID, KmsPlugin

from replicator.errors import DecryptError, EncryptionConfigError, KmsUnavailable
from replicator.kube.encryption import EncryptionConfig
from replicator.kube.kms import KmsClient
from replicator.kube.kms._generated import kmsv2_encrypted_object_pb2 as eo_pb2
from replicator.kube.protowire import encode_len

KEY = "/registry/secrets/ns/s"
PLAIN = b"k8s\x00" + encode_len(1, b"\x0a\x02v1\x12\x06Secret") + encode_len(2, b"\x0a\x03\x0a\x01s")


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[KmsPlugin]:
    # unix socket paths are limited to ~107 bytes; tmp_path can be long
    short = Path(os.environ.get("TMPDIR", "/tmp")) / f"kms-{os.getpid()}-{id(tmp_path) % 10**6}.sock"
    p = KmsPlugin(short).start()
    yield p
    p.close()
    short.unlink(missing_ok=True)


def config(plugin: KmsPlugin, api: str = "v2", name: str = "p1", **extra: Any) -> EncryptionConfig:
    kms = {"apiVersion": api, "name": name, "endpoint": plugin.endpoint, "timeout": "2s", **extra}
    return EncryptionConfig.from_dict(
        {
            "kind": "EncryptionConfiguration",
            "apiVersion": "apiserver.config.k8s.io/v1",
            "resources": [{"resources": ["secrets"], "providers": [{"kms": kms}, {"identity": {}}]}],
        }
    )


def decrypt(cfg: EncryptionConfig, value: bytes, key: str = KEY) -> bytes:
    return cfg.decrypt(key=key, value=value, group="", resource="secrets")


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_round_trip_through_the_plugin(plugin: KmsPlugin, api: str) -> None:
    cfg = config(plugin, api)
    sealed = cfg.encrypt(key=KEY, plaintext=PLAIN, group="", resource="secrets")
    assert sealed.startswith(f"k8s:enc:kms:{api}:p1:".encode()) and PLAIN not in sealed
    cfg.close()
    fresh = config(plugin, api)  # no cached DEK: goes through the plugin's Decrypt
    assert decrypt(fresh, sealed) == PLAIN
    assert plugin.calls[f"{api}.Decrypt"] == 1
    with pytest.raises(DecryptError):  # the etcd key is bound (AES-GCM additional data)
        decrypt(fresh, sealed, key="/registry/secrets/ns/other")
    fresh.close()


def test_cache_hit_avoids_a_second_decrypt(plugin: KmsPlugin) -> None:
    writer = config(plugin)
    values = [writer.encrypt(key=KEY, plaintext=PLAIN, group="", resource="secrets") for _ in range(3)]
    assert plugin.calls["v2.Encrypt"] == 1  # one seed for many writes
    reader = config(plugin)
    for v in values:
        assert decrypt(reader, v) == PLAIN
    assert plugin.calls["v2.Decrypt"] == 1
    writer.close()
    reader.close()


def apiserver_v2_value(plugin: KmsPlugin, *, use_seed: bool, aad: bytes = KEY.encode()) -> bytes:
    """A kms v2 value laid out as kube-apiserver writes it, built without our envelope code."""
    source = os.urandom(32)
    data = PLAIN
    if use_seed:
        info = os.urandom(32)
        dek = HKDFExpand(algorithm=hashes.SHA256(), length=32, info=info).derive(source)
        nonce = os.urandom(12)
        encrypted = info + nonce + AESGCM(dek).encrypt(nonce, data, aad)
    else:
        # 4 random bytes + an 8-byte counter, as NewGCMTransformerWithUniqueKeyUnsafe makes them
        nonce = os.urandom(4) + (7).to_bytes(8, "big")
        encrypted = nonce + AESGCM(source).encrypt(nonce, data, aad)
    obj = eo_pb2.EncryptedObject(
        encryptedData=encrypted,
        keyID=KEY_ID,
        encryptedDEKSource=plugin.kek.wrap(source),
        annotations=ANNOTATIONS,
        encryptedDEKSourceType=eo_pb2.HKDF_SHA256_XNONCE_AES_GCM_SEED if use_seed else eo_pb2.AES_GCM_KEY,
    )
    return b"k8s:enc:kms:v2:p1:" + obj.SerializeToString()


@pytest.mark.parametrize("use_seed", [True, False])
def test_apiserver_v2_layout_decrypts(plugin: KmsPlugin, use_seed: bool) -> None:
    cfg = config(plugin)
    assert decrypt(cfg, apiserver_v2_value(plugin, use_seed=use_seed)) == PLAIN
    cfg.close()


@pytest.mark.parametrize("mode", ["gcm", "cbc"])
def test_apiserver_v1_layout_decrypts(plugin: KmsPlugin, mode: str) -> None:
    dek = os.urandom(32)
    enc_dek = plugin.kek.wrap(dek)
    if mode == "gcm":  # 1.25+: nonce | AES-GCM, etcd key as additional data
        nonce = os.urandom(12)
        body = nonce + AESGCM(dek).encrypt(nonce, PLAIN, KEY.encode())
    else:  # 1.24 and older: IV | AES-CBC with PKCS#7, no key binding
        iv = os.urandom(16)
        pad = padding.PKCS7(128).padder()
        enc = Cipher(algorithms.AES(dek), modes.CBC(iv)).encryptor()
        body = iv + enc.update(pad.update(PLAIN) + pad.finalize()) + enc.finalize()
    value = b"k8s:enc:kms:v1:p1:" + len(enc_dek).to_bytes(2, "big") + enc_dek + body
    cfg = config(plugin, "v1")
    assert decrypt(cfg, value) == PLAIN
    assert plugin.calls["v1.Version"] == 1 and plugin.calls["v1.Decrypt"] == 1
    cfg.close()


def test_outage_raises_kms_unavailable(plugin: KmsPlugin) -> None:
    value = apiserver_v2_value(plugin, use_seed=True)
    plugin.stop()
    cfg = config(plugin, timeout="1s")
    with pytest.raises(KmsUnavailable, match="kms p1 at unix://"):
        decrypt(cfg, value)
    with pytest.raises(KmsUnavailable):
        cfg.encrypt(key=KEY, plaintext=PLAIN, group="", resource="secrets")
    plugin.start()  # back: the same config recovers
    assert decrypt(cfg, value) == PLAIN
    cfg.close()


def test_plugin_refusal_is_a_decrypt_error(plugin: KmsPlugin) -> None:
    value = apiserver_v2_value(plugin, use_seed=True)
    other = KmsPlugin(plugin.socket.with_suffix(".2.sock")).start()  # another KEK: refuses
    try:
        cfg = config(other)
        with pytest.raises(DecryptError, match="does not decrypt"):
            decrypt(cfg, value)
        cfg.close()
    finally:
        other.close()


def test_client_status(plugin: KmsPlugin) -> None:
    v2 = KmsClient(name="p", endpoint=plugin.endpoint, api_version="v2", timeout=2)
    v1 = KmsClient(name="p", endpoint=plugin.endpoint, api_version="v1", timeout=2)
    assert (v2.status().version, v2.status().key_id) == ("v2", KEY_ID)
    assert v1.status().version == "v1beta1"
    v1.close()
    v2.close()


@pytest.mark.parametrize(
    ("kms", "error"),
    [
        ({"name": "p", "endpoint": "/no/scheme.sock"}, "endpoint"),
        ({"name": "p", "endpoint": "unix:///k.sock", "apiVersion": "v3"}, "apiVersion"),
        ({"name": "p", "endpoint": "unix:///k.sock", "timeout": "soon"}, "timeout"),
        ({"endpoint": "unix:///k.sock"}, "name"),
        ({"name": "p", "endpoint": "unix:///k.sock", "cachesize": "big"}, "cachesize"),
        ({"name": "p", "endpoint": "unix:///k.sock", "secret": "x"}, "unknown field"),
    ],
)
def test_kms_config_errors(kms: dict[str, Any], error: str) -> None:
    doc = {
        "kind": "EncryptionConfiguration",
        "apiVersion": "apiserver.config.k8s.io/v1",
        "resources": [{"resources": ["secrets"], "providers": [{"kms": kms}]}],
    }
    with pytest.raises(EncryptionConfigError, match=error):
        EncryptionConfig.from_dict(doc)


def test_kms_config_defaults() -> None:
    doc = {
        "kind": "EncryptionConfiguration",
        "apiVersion": "apiserver.config.k8s.io/v1",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [{"kms": {"name": "p", "endpoint": "unix:///k.sock", "timeout": "1m30s"}}],
            }
        ],
    }
    (provider,) = EncryptionConfig.from_dict(doc).providers_for("", "secrets")
    assert (provider.kms_api_version, provider.timeout, provider.cache_size) == ("v1", 90.0, 1000)
    assert provider.prefix() == b"k8s:enc:kms:v1:p:"
