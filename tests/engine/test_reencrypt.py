"""Re-encryption for a standby with other keys, checked by decrypting with `cryptography` directly."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from replicator.config import Settings
from replicator.engine import runner
from replicator.etcd.local import LocalEtcd

from .conftest import EXPECTED_KEYS, REAL, dump, load_fixtures, run_once

pytestmark = pytest.mark.integration

SECRETS = sorted(k for k in EXPECTED_KEYS if k.startswith("/registry/secrets/"))


def source_plaintext(key: str, value: bytes) -> bytes:
    """aescbc as kube-apiserver writes it: prefix, 16-byte IV, AES-CBC, PKCS#7."""
    cfg = yaml.safe_load((REAL / "encryption-config.yaml").read_text())
    secret = base64.b64decode(cfg["resources"][0]["providers"][0]["aescbc"]["keys"][0]["secret"])
    prefix = b"k8s:enc:aescbc:v1:key:"
    assert value.startswith(prefix), key
    body = value[len(prefix) :]
    dec = Cipher(algorithms.AES(secret), modes.CBC(body[:16])).decryptor()
    padded = dec.update(body[16:]) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def standby_config(tmp_path: Path) -> tuple[Path, bytes]:
    secret = os.urandom(32)
    doc = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {"aesgcm": {"keys": [{"name": "standby", "secret": base64.b64encode(secret).decode()}]}},
                    {"identity": {}},
                ],
            }
        ],
    }
    path = tmp_path / "standby-encryption.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, secret


async def test_secrets_are_reencrypted_for_a_standby_with_other_keys(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    source, dest = etcd_pair
    values = load_fixtures(source)
    cfg, secret = standby_config(tmp_path)
    await runner.run(make_settings(source, dest, once=True, dest_encryption_provider_config=cfg))

    mirrored = dump(dest.endpoint)
    prefix = b"k8s:enc:aesgcm:v1:standby:"
    for key in SECRETS:
        written = mirrored[key]
        assert written.startswith(prefix), key
        body = written[len(prefix) :]
        # aesgcm binds the etcd key as associated data: decrypting under another key must fail.
        plain = AESGCM(secret).decrypt(body[:12], body[12:], key.encode())
        assert plain == source_plaintext(key, values[key])
        assert plain.startswith(b"k8s\x00")
    for key in EXPECTED_KEYS - set(SECRETS):
        assert mirrored[key] == values[key]  # not encrypted anywhere: byte for byte


def test_a_standby_config_that_cannot_write_stops_before_anything_is_written(
    etcd_pair: tuple[LocalEtcd, LocalEtcd], tmp_path: Path
) -> None:
    source, dest = etcd_pair
    load_fixtures(source)
    bad = tmp_path / "kms-only.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": [
                    {
                        "resources": ["secrets"],
                        "providers": [
                            {
                                "kms": {
                                    "apiVersion": "v2",
                                    "name": "vault",
                                    "endpoint": f"unix://{tmp_path}/nowhere.sock",
                                }
                            }
                        ],
                    }
                ],
            }
        )
    )
    extra = ("--dest-encryption-provider-config", str(bad))
    proc = run_once(source.endpoint, dest.endpoint, tmp_path / "j.db", *extra)
    assert proc.returncode == 2, proc.stderr
    assert "--dest-encryption-provider-config" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert dump(dest.endpoint) == {}
