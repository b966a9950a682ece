"""Connecting: TLS with client certificates, skip-verify, auth, failover, deadlines, bad config."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from replicator.errors import ConfigError
from replicator.etcd import (
    ClientConfig,
    EtcdAuthError,
    EtcdClient,
    EtcdPermissionDenied,
    EtcdTimeout,
    EtcdUnavailable,
)
from replicator.etcd.local import TlsFiles, free_port, make_cluster

from .certs import make_pki, make_self_signed

if TYPE_CHECKING:
    from tests.conftest import Etcdctl, EtcdFactory

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leaked_tasks")]


async def test_tls_with_client_certificates(
    tmp_path: Path, etcd_factory: EtcdFactory, etcdctl: Etcdctl
) -> None:
    pki = make_pki(tmp_path / "pki")
    tls = TlsFiles(cert=pki.server_cert, key=pki.server_key, ca=pki.ca)
    server = etcd_factory("tls", tls=tls)
    config = ClientConfig(
        endpoints=(server.url,), cacert=pki.ca, cert=pki.client_cert, key=pki.client_key, dial_timeout=3
    )
    async with await EtcdClient.connect(config) as client:
        await client.put(b"/secure", b"yes")
    ctl_tls = (f"--cacert={pki.ca}", f"--cert={pki.client_cert}", f"--key={pki.client_key}")
    assert etcdctl(server.url, "get", "/secure", "--print-value-only", extra=ctl_tls).stdout.strip() == "yes"
    # without a client certificate the server refuses the handshake
    no_cert = ClientConfig(endpoints=(server.url,), cacert=pki.ca, dial_timeout=1)
    with pytest.raises(EtcdUnavailable):
        await EtcdClient.connect(no_cert)


async def test_insecure_skip_tls_verify_trusts_presented_certificate(
    tmp_path: Path, etcd_factory: EtcdFactory
) -> None:
    cert, key = make_self_signed(tmp_path / "self")
    server = etcd_factory("tofu", tls=TlsFiles(cert, key, cert, client_cert_auth=False))
    with pytest.raises(EtcdUnavailable):  # system roots do not know our CA
        await EtcdClient.connect(ClientConfig(endpoints=(server.url,), dial_timeout=1))
    config = ClientConfig(endpoints=(server.url,), insecure_skip_tls_verify=True, dial_timeout=3)
    async with await EtcdClient.connect(config) as client:
        await client.put(b"/k", b"v")
        assert (await client.get(b"/k")) is not None


async def test_username_password_auth(etcd_factory: EtcdFactory, etcdctl: Etcdctl) -> None:
    server = etcd_factory("auth")
    etcdctl(server.endpoint, "user", "add", "root:rootpw")
    etcdctl(server.endpoint, "auth", "enable")
    root = ("--user=root:rootpw",)
    good = ClientConfig(endpoints=(server.endpoint,), username="root", password="rootpw")
    async with await EtcdClient.connect(good) as client:
        await client.put(b"/authed", b"1")
    assert etcdctl(server.endpoint, "get", "/authed", "--print-value-only", extra=root).stdout.strip() == "1"
    bad = ClientConfig(endpoints=(server.endpoint,), username="root", password="wrong")
    with pytest.raises(EtcdAuthError):
        await EtcdClient.connect(bad)
    async with await EtcdClient.connect(ClientConfig(endpoints=(server.endpoint,))) as anonymous:
        with pytest.raises((EtcdPermissionDenied, EtcdAuthError)):
            await anonymous.get(b"/authed")


async def test_first_endpoint_dead_connects_to_next(etcd_factory: EtcdFactory) -> None:
    server = etcd_factory("second")
    dead = f"127.0.0.1:{free_port()}"
    config = ClientConfig(endpoints=(dead, server.endpoint), dial_timeout=0.5)
    async with await EtcdClient.connect(config) as client:
        assert client.endpoint == server.endpoint
        await client.put(b"/k", b"v")
    with pytest.raises(EtcdUnavailable, match="no etcd endpoint reachable"):
        await EtcdClient.connect(ClientConfig(endpoints=(dead,), dial_timeout=0.3))


async def test_failover_in_three_member_cluster(tmp_path: Path, etcdctl: Etcdctl) -> None:
    members = make_cluster(tmp_path, 3, extra_args=("--heartbeat-interval=50", "--election-timeout=500"))
    try:
        for m in members:
            m.start(wait=False)
        for m in members:
            m.wait_healthy()
        config = ClientConfig(endpoints=tuple(m.endpoint for m in members), request_timeout=3)
        async with await EtcdClient.connect(config) as client:
            assert client.endpoint == members[0].endpoint
            assert len(await client.member_list()) == 3
            await client.put(b"/before", b"1")
            members[0].kill()
            with pytest.raises(EtcdUnavailable):
                await client.put(b"/during", b"lost?")
            assert client.endpoint == members[1].endpoint
            # the caller's retry policy: try again (on the next endpoint) until a leader is back
            for _ in range(20):
                try:
                    await client.put(b"/after", b"2")
                    break
                except EtcdUnavailable:
                    await asyncio.sleep(0.2)
            assert client.endpoint != members[0].endpoint
            assert (await client.get(b"/before")) is not None
        out = etcdctl(members[2].endpoint, "get", "/after", "--print-value-only").stdout.strip()
        assert out == "2"
    finally:
        for m in members:
            m.stop()


async def test_per_call_timeout_on_paused_server(etcd_factory: EtcdFactory) -> None:
    server = etcd_factory("paused")
    config = ClientConfig(endpoints=(server.endpoint,), request_timeout=1.0)
    async with await EtcdClient.connect(config) as client:
        await client.put(b"/k", b"v")
        server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(EtcdTimeout):
                await client.get(b"/k")
            assert 0.9 < time.monotonic() - started < 2.5
        finally:
            server.resume()
        assert (await client.get(b"/k")) is not None


@pytest.mark.parametrize("field", ["cacert", "cert", "key"])
async def test_bad_tls_path_is_config_error(tmp_path: Path, field: str) -> None:
    existing = tmp_path / "exists.pem"
    existing.write_text("x")
    missing = tmp_path / "missing.pem"
    base = ClientConfig(endpoints=("https://127.0.0.1:1",), cacert=existing, cert=existing, key=existing)
    config = dataclasses.replace(base, **{field: missing})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"etcd {field}: cannot read {missing}"):
        await EtcdClient.connect(config)


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        ClientConfig(endpoints=())
    with pytest.raises(ConfigError):
        ClientConfig(endpoints=("h:1",), username="u")
    assert ClientConfig(endpoints=("h:1",)).plaintext
    assert not ClientConfig(endpoints=("https://h:1",)).plaintext
    assert not ClientConfig(endpoints=("h:1",), cacert=Path("/ca")).plaintext
