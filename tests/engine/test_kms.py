"""KMS v2 end to end through real etcd: a Secret encrypted by a KMS plugin is decrypted to
evaluate the rules and re-encrypted for a standby with other keys; while the plugin is down, the
Secret waits instead of being dropped. Checked with etcdctl and `cryptography` directly."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from replicator.config import Settings
from replicator.engine import runner
from replicator.etcd.local import LocalEtcd
from replicator.kube import synth
from replicator.kube.encryption import EncryptionConfig

from .conftest import dump, put_raw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kube"))
from kms_plugin import KmsPlugin  # the test plugin lives beside the kube tests

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RULES = """
filters:
  secondary:
    - group: ""
      resources: [{kind: Secret, version: v1}]
      labelSelectors: [{matchLabels: {mirror: "true"}}]
"""


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[KmsPlugin]:
    p = KmsPlugin(tmp_path / "kms.sock").start()
    yield p
    p.close()


def configs(tmp_path: Path, plugin: KmsPlugin) -> tuple[Path, Path, bytes]:
    source = tmp_path / "source-encryption.yaml"
    source.write_text(
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
                                    "name": "test-kms",
                                    "endpoint": plugin.endpoint,
                                    "timeout": "1s",
                                }
                            },
                            {"identity": {}},
                        ],
                    }
                ],
            }
        )
    )
    key = os.urandom(32)
    dest = tmp_path / "standby-encryption.yaml"
    dest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": [
                    {
                        "resources": ["secrets"],
                        "providers": [
                            {
                                "aescbc": {
                                    "keys": [{"name": "standby", "secret": base64.b64encode(key).decode()}]
                                }
                            }
                        ],
                    }
                ],
            }
        )
    )
    return source, dest, key


def aescbc_open(value: bytes, key: bytes) -> bytes:
    prefix = b"k8s:enc:aescbc:v1:standby:"
    assert value.startswith(prefix)
    body = value[len(prefix) :]
    dec = Cipher(algorithms.AES(key), modes.CBC(body[:16])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(dec.update(body[16:]) + dec.finalize()) + unpadder.finalize()


async def test_kms_v2_secrets_are_read_through_the_plugin_and_wait_for_it(
    etcd_pair: tuple[LocalEtcd, LocalEtcd],
    plugin: KmsPlugin,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> None:
    source, dest = etcd_pair
    src_cfg, dest_cfg, dest_key = configs(tmp_path, plugin)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    writer = EncryptionConfig.load(src_cfg)  # setup only: what the primary's apiserver would write

    def secret(name: str, mirror: str, *, by: EncryptionConfig = writer) -> tuple[str, bytes, bytes]:
        key = f"/registry/secrets/shop/{name}"
        plain = synth.secret(
            "shop", name, labels={"mirror": mirror}, data={"password": b"s3cr3t-" + name.encode()}
        )
        stored = by.encrypt(key=key, plaintext=plain, group="", resource="secrets")
        assert stored.startswith(b"k8s:enc:kms:v2:test-kms:")
        return key, plain, stored

    inside, outside = secret("db", "true"), secret("scratch", "false")
    for key, _, stored in (inside, outside):
        put_raw(source.endpoint, key, stored)
    settings = make_settings(
        source,
        dest,
        rules_file=rules,
        encryption_provider_config=src_cfg,
        dest_encryption_provider_config=dest_cfg,
    )
    stop, synced = asyncio.Event(), asyncio.Event()
    mirror = asyncio.create_task(runner.run(settings, stop=stop, on_synced=lambda _: synced.set()))
    try:
        await asyncio.wait_for(synced.wait(), 60)
        state = await asyncio.to_thread(dump, dest.endpoint, "/registry/")
        assert set(state) == {inside[0]}  # the label was read through the plugin
        assert aescbc_open(state[inside[0]], dest_key) == inside[1]  # re-encrypted for the standby

        # Another apiserver instance: a data key the replicator has not cached yet.
        other = EncryptionConfig.load(src_cfg)
        later = secret("later", "true", by=other)  # encrypted while the plugin still answers
        other.close()
        plugin.stop()
        put_raw(source.endpoint, later[0], later[2])
        await asyncio.sleep(3)
        assert later[0] not in await asyncio.to_thread(dump, dest.endpoint, "/registry/")
        assert not mirror.done()  # waiting, not failed
        plugin.start()
        for _ in range(300):
            state = await asyncio.to_thread(dump, dest.endpoint, "/registry/")
            if later[0] in state:
                break
            await asyncio.sleep(0.1)
        assert aescbc_open(state[later[0]], dest_key) == later[1]
    finally:
        stop.set()
        await asyncio.wait_for(mirror, 60)
    writer.close()
