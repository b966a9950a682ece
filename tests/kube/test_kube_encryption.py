from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.errors import DecryptError, EncryptionConfigError
from replicator.kube.encryption import EncryptionConfig, is_encrypted

PLAIN = b"k8s\x00\x0a\x0fsecret-payload-xyz"
KEY = "/registry/secrets/ns/s"


def b64(n: int, fill: int = 1) -> str:
    return base64.b64encode(bytes([fill]) * n).decode()


def config(
    providers: list[dict[str, Any]], resources: list[str] | None = None, *, legacy: bool = False
) -> EncryptionConfig:
    doc = {
        "kind": "EncryptionConfig" if legacy else "EncryptionConfiguration",
        "apiVersion": "v1" if legacy else "apiserver.config.k8s.io/v1",
        "resources": [{"resources": resources or ["secrets"], "providers": providers}],
    }
    return EncryptionConfig.from_dict(doc)


def keyed(ptype: str, *names_and_fill: tuple[str, int], size: int = 32) -> dict[str, Any]:
    return {ptype: {"keys": [{"name": n, "secret": b64(size, f)} for n, f in names_and_fill]}}


@pytest.mark.parametrize("ptype", ["aescbc", "aesgcm", "secretbox"])
@pytest.mark.parametrize("legacy", [False, True])
def test_round_trip(ptype: str, legacy: bool) -> None:
    cfg = config([keyed(ptype, ("k1", 1)), {"identity": {}}], legacy=legacy)
    sealed = cfg.encrypt(key=KEY, plaintext=PLAIN, group="", resource="secrets")
    assert sealed.startswith(f"k8s:enc:{ptype}:v1:k1:".encode()) and is_encrypted(sealed)
    assert b"secret-payload" not in sealed
    assert cfg.decrypt(key=KEY, value=sealed, group="", resource="secrets") == PLAIN
    assert cfg.can_decrypt(sealed, key=KEY, group="", resource="secrets")


def test_identity_first_writes_plaintext_and_reads_everything() -> None:
    cfg = config([{"identity": {}}, keyed("aescbc", ("k1", 1))])
    assert cfg.encrypt(key=KEY, plaintext=PLAIN, group="", resource="secrets") == PLAIN
    writer = config([keyed("aescbc", ("k1", 1))])
    sealed = writer.encrypt(key=KEY, plaintext=PLAIN, group="", resource="secrets")
    assert cfg.decrypt(key=KEY, value=sealed, group="", resource="secrets") == PLAIN
    assert cfg.decrypt(key=KEY, value=PLAIN, group="", resource="secrets") == PLAIN


def test_rotation_old_key_name_still_decrypts() -> None:
    old = config([keyed("aescbc", ("old", 1))])
    sealed = old.encrypt(key=KEY, plaintext=PLAIN, group="", resource="secrets")
    rotated = config([keyed("secretbox", ("new", 3)), keyed("aescbc", ("new", 2), ("old", 1))])
    assert rotated.decrypt(key=KEY, value=sealed, group="", resource="secrets") == PLAIN
    assert rotated.encrypt(key=KEY, plaintext=PLAIN, group="", resource="secrets").startswith(
        b"k8s:enc:secretbox:v1:new:"
    )


def test_same_key_name_tries_every_candidate() -> None:
    sealed = config([keyed("aescbc", ("k", 1))]).encrypt(
        key=KEY, plaintext=PLAIN, group="", resource="secrets"
    )
    both = config([keyed("aescbc", ("k", 9)), keyed("aescbc", ("k", 1))])
    assert both.decrypt(key=KEY, value=sealed, group="", resource="secrets") == PLAIN


def test_aesgcm_is_bound_to_the_key() -> None:
    cfg = config([keyed("aesgcm", ("k", 1))])
    sealed = cfg.encrypt(key=KEY, plaintext=PLAIN, group="", resource="secrets")
    with pytest.raises(DecryptError, match="aesgcm key 'k'") as info:
        cfg.decrypt(key="/other/secrets/ns/s", value=sealed, group="", resource="secrets")
    assert "secret-payload" not in str(info.value)
    assert not cfg.can_decrypt(sealed, key="/other/secrets/ns/s", group="", resource="secrets")


def test_wrong_key_and_missing_key_name() -> None:
    sealed = config([keyed("aescbc", ("k", 1))]).encrypt(
        key=KEY, plaintext=PLAIN, group="", resource="secrets"
    )
    with pytest.raises(DecryptError, match="does not decrypt"):
        config([keyed("aescbc", ("k", 2))]).decrypt(key=KEY, value=sealed, group="", resource="secrets")
    with pytest.raises(DecryptError, match="no aescbc key named 'k'"):
        config([keyed("aescbc", ("other", 1))]).decrypt(key=KEY, value=sealed, group="", resource="secrets")
    with pytest.raises(DecryptError, match="no aescbc key"):
        config([keyed("aescbc", ("k", 1))]).decrypt(key=KEY, value=sealed, group="", resource="configmaps")


def test_kms_value_of_unconfigured_plugin_is_a_decrypt_error() -> None:
    cfg = config([{"kms": {"apiVersion": "v2", "name": "plugin", "endpoint": "unix:///k.sock"}}])
    with pytest.raises(DecryptError, match="no kms key named 'other'"):
        cfg.decrypt(key=KEY, value=b"k8s:enc:kms:v2:other:" + b"\x00" * 40, group="", resource="secrets")


def test_wildcards_and_first_match() -> None:
    cfg = EncryptionConfig.from_dict(
        {
            "kind": "EncryptionConfiguration",
            "apiVersion": "apiserver.config.k8s.io/v1",
            "resources": [
                {
                    "resources": ["secrets", "deployments.apps", "widgets.example.io"],
                    "providers": [keyed("aescbc", ("a", 1))],
                },
                {"resources": ["secrets"], "providers": [keyed("secretbox", ("s", 2))]},
                {"resources": ["*.apps"], "providers": [keyed("aesgcm", ("g", 3))]},
                {"resources": ["*."], "providers": [{"identity": {}}]},
                {"resources": ["*.*"], "providers": [keyed("secretbox", ("all", 4))]},
            ],
        }
    )

    def types(group: str, resource: str) -> list[str]:
        return [p.type for p in cfg.providers_for(group, resource)]

    assert types("", "secrets") == ["aescbc", "secretbox"]
    assert types("apps", "deployments") == ["aescbc"]
    assert types("apps", "statefulsets") == ["aesgcm"]
    assert types("", "configmaps") == ["identity"]
    assert types("example.io", "widgets") == ["aescbc"]
    assert types("example.io", "gadgets") == ["secretbox"]
    assert types("batch", "jobs") == ["secretbox"]
    assert (
        EncryptionConfig.from_dict(
            {
                "kind": "EncryptionConfiguration",
                "apiVersion": "apiserver.config.k8s.io/v1",
                "resources": [{"resources": ["secrets"], "providers": [{"identity": {}}]}],
            }
        ).providers_for("", "configmaps")
        == ()
    )


def test_masked_entry_is_rejected() -> None:
    with pytest.raises(EncryptionConfigError, match="masked"):
        EncryptionConfig.from_dict(
            {
                "kind": "EncryptionConfiguration",
                "apiVersion": "apiserver.config.k8s.io/v1",
                "resources": [
                    {"resources": ["*.apps"], "providers": [{"identity": {}}]},
                    {"resources": ["deployments.apps"], "providers": [{"identity": {}}]},
                ],
            }
        )


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "enc.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def good() -> dict[str, Any]:
    return {
        "kind": "EncryptionConfiguration",
        "apiVersion": "apiserver.config.k8s.io/v1",
        "resources": [{"resources": ["secrets"], "providers": [keyed("aescbc", ("k", 1))]}],
    }


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(kind="Nope"), "kind/apiVersion"),
        (lambda d: d.update(apiVersion="v2"), "kind/apiVersion"),
        (lambda d: d.pop("resources"), "resources"),
        (lambda d: d["resources"][0].update(resources=[]), "resources[0].resources"),
        (lambda d: d["resources"][0].update(providers=[]), "resources[0].providers"),
        (lambda d: d["resources"][0].update(providers=[{"rot13": {}}]), "unknown provider 'rot13'"),
        (lambda d: d["resources"][0]["providers"][0]["aescbc"].update(keys=[]), "providers[0].aescbc.keys"),
        (
            lambda d: d["resources"][0]["providers"][0]["aescbc"]["keys"][0].update(secret="%%%"),
            "keys[0].secret: not valid base64",
        ),
        (
            lambda d: d["resources"][0]["providers"][0]["aescbc"]["keys"][0].update(secret=b64(20)),
            "16/24/32-byte key, got 20",
        ),
        (lambda d: d["resources"][0]["providers"][0]["aescbc"]["keys"][0].pop("name"), "keys[0].name"),
        (
            lambda d: d["resources"][0].update(providers=[keyed("secretbox", ("k", 1), size=16)]),
            "secretbox needs a 32-byte",
        ),
    ],
)
def test_bad_configs_name_file_and_field(tmp_path: Path, mutate: Any, field: str) -> None:
    doc = good()
    mutate(doc)
    path = write(tmp_path, doc)
    with pytest.raises(EncryptionConfigError) as info:
        EncryptionConfig.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and field in message
    assert b64(32) not in message


def test_unreadable_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError, match="cannot read"):
        EncryptionConfig.load(tmp_path / "missing.yaml")
    with pytest.raises(EncryptionConfigError, match="not valid YAML"):
        EncryptionConfig.load(write(tmp_path, "a: [b"))


def test_key_repr_hides_material() -> None:
    cfg = config([keyed("aescbc", ("k", 1))])
    assert b64(32) not in repr(cfg) and "\\x01" not in repr(cfg)


def test_real_config_decrypts_all_secrets(
    real_values: dict[str, bytes], real_encryption_config: Path
) -> None:
    cfg = EncryptionConfig.load(real_encryption_config)
    secrets = {k: v for k, v in real_values.items() if k.startswith("/registry/secrets/")}
    assert len(secrets) == 4
    for key, value in secrets.items():
        assert value.startswith(b"k8s:enc:aescbc:v1:key:")
        assert cfg.decrypt(key=key, value=value, group="", resource="secrets").startswith(b"k8s\x00")
        # Re-encrypting for a standby with the same config reads back the same plaintext.
        plain = cfg.decrypt(key=key, value=value, group="", resource="secrets")
        again = cfg.encrypt(key=key, plaintext=plain, group="", resource="secrets")
        assert cfg.decrypt(key=key, value=again, group="", resource="secrets") == plain


@settings(max_examples=30)
@given(payload=st.binary(max_size=200), ptype=st.sampled_from(["aescbc", "aesgcm", "secretbox"]))
def test_round_trip_property(payload: bytes, ptype: str) -> None:
    cfg = config([keyed(ptype, ("k", 5))])
    plaintext = b"k8s\x00" + payload
    sealed = cfg.encrypt(key=KEY, plaintext=plaintext, group="", resource="secrets")
    assert cfg.decrypt(key=KEY, value=sealed, group="", resource="secrets") == plaintext
