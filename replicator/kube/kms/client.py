"""A synchronous gRPC client for one KMS plugin (k8s.io/kms v1beta1 or v2) on a unix socket.

The only place besides ``etcd/`` that talks gRPC; protobuf messages and gRPC errors stay here.
Calls are synchronous with the provider's ``timeout`` (kube-apiserver's default is 3 s): the
caller sits on the engine's event loop today, so a slow plugin blocks it for at most that long,
and the DEK caches in ``envelope`` make calls rare (one per distinct encrypted DEK / seed).

An unreachable plugin, a timeout or a cancelled call raises ``KmsUnavailable`` (retryable: the
value waits); any other status means the plugin refused the request and raises ``KmsRejected``,
which the envelope reports as a ``DecryptError`` naming the key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from replicator.errors import KmsUnavailable
from replicator.kube.kms._generated import kms_v1beta1_pb2, kms_v1beta1_pb2_grpc, kms_v2_pb2, kms_v2_pb2_grpc

V1_API_VERSION = "v1beta1"  # what kube-apiserver sends and expects back in v1 requests
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)
T = TypeVar("T")


class KmsRejected(ValueError):
    """The plugin answered with an error status (wrong key, bad ciphertext, ...)."""


@dataclass(frozen=True, slots=True)
class KmsStatus:
    version: str
    healthz: str = "ok"
    key_id: str = ""


@dataclass(frozen=True, slots=True)
class EncryptResult:
    ciphertext: bytes
    key_id: str = ""
    annotations: Mapping[str, bytes] = field(default_factory=dict)


class KmsClient:
    """One connection to one plugin; ``api_version`` is ``v1`` or ``v2`` as in the config."""

    def __init__(self, *, name: str, endpoint: str, api_version: str, timeout: float) -> None:
        if not endpoint.startswith("unix://"):
            raise ValueError(f"kms {name}: endpoint {endpoint!r} is not unix:///path")
        if api_version not in ("v1", "v2"):
            raise ValueError(f"kms {name}: unsupported apiVersion {api_version!r}")
        self.name = name
        self.endpoint = endpoint
        self.api_version = api_version
        self.timeout = timeout
        self._v1_checked = False
        self._connect()

    def _connect(self) -> None:
        # kube-apiserver dials with authority "localhost"; some plugins check it.
        self._channel = grpc.insecure_channel(
            self.endpoint, options=[("grpc.default_authority", "localhost")]
        )
        self._v1 = kms_v1beta1_pb2_grpc.KeyManagementServiceStub(self._channel)
        self._v2 = kms_v2_pb2_grpc.KeyManagementServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def _call(self, what: str, fn: Callable[..., T], request: Any) -> T:
        try:
            return fn(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            where = f"kms {self.name} at {self.endpoint}: {what}"
            if code in _RETRYABLE:
                # A fresh channel on the next call: a channel in backoff would fail fast for up to
                # a couple of minutes after the plugin is back.
                self._channel.close()
                self._connect()
                raise KmsUnavailable(f"{where}: {code.name}") from None
            raise KmsRejected(f"{where}: {code.name}") from None

    def status(self) -> KmsStatus:
        """v2 ``Status``; v1 ``Version`` (healthz is "ok" when it answers)."""
        if self.api_version == "v1":
            resp = self._call(
                "Version", self._v1.Version, kms_v1beta1_pb2.VersionRequest(version=V1_API_VERSION)
            )
            return KmsStatus(version=resp.version)
        st = self._call("Status", self._v2.Status, kms_v2_pb2.StatusRequest())
        return KmsStatus(version=st.version, healthz=st.healthz, key_id=st.key_id)

    def _check_v1(self) -> None:
        # kube-apiserver checks the v1 plugin's API version once before its first call.
        if not self._v1_checked:
            version = self.status().version
            if version != V1_API_VERSION:
                raise KmsRejected(f"kms {self.name}: plugin speaks {version!r}, not {V1_API_VERSION}")
            self._v1_checked = True

    def decrypt(
        self, ciphertext: bytes, *, key_id: str = "", annotations: Mapping[str, bytes] | None = None
    ) -> bytes:
        if self.api_version == "v1":
            self._check_v1()
            req1 = kms_v1beta1_pb2.DecryptRequest(version=V1_API_VERSION, cipher=ciphertext)
            return bytes(self._call("Decrypt", self._v1.Decrypt, req1).plain)
        req2 = kms_v2_pb2.DecryptRequest(
            ciphertext=ciphertext, uid=str(uuid.uuid4()), key_id=key_id, annotations=dict(annotations or {})
        )
        return bytes(self._call("Decrypt", self._v2.Decrypt, req2).plaintext)

    def encrypt(self, plaintext: bytes) -> EncryptResult:
        if self.api_version == "v1":
            self._check_v1()
            req1 = kms_v1beta1_pb2.EncryptRequest(version=V1_API_VERSION, plain=plaintext)
            return EncryptResult(ciphertext=bytes(self._call("Encrypt", self._v1.Encrypt, req1).cipher))
        req2 = kms_v2_pb2.EncryptRequest(plaintext=plaintext, uid=str(uuid.uuid4()))
        resp = self._call("Encrypt", self._v2.Encrypt, req2)
        return EncryptResult(
            ciphertext=bytes(resp.ciphertext), key_id=resp.key_id, annotations=dict(resp.annotations)
        )
