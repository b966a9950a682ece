"""A test KMS plugin (v1beta1 and v2 APIs) on a unix socket, doing real AES-GCM with a local KEK.

It runs a ``grpc.aio`` server on its own event loop in a background thread: the replicator's KMS
client is synchronous, so a server on the test's own loop would deadlock against it. ``calls``
counts requests per method, so tests can see cache hits; ``stop()`` simulates an outage.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from replicator.kube.kms._generated import kms_v1beta1_pb2, kms_v1beta1_pb2_grpc, kms_v2_pb2, kms_v2_pb2_grpc

KEY_ID = "test-kek-1"
ANNOTATIONS = {"kms.example.io/region": b"eu-1"}


class TestKek:
    """The plugin's key encryption key: ``nonce | AES-GCM(kek, plaintext)``."""

    def __init__(self) -> None:
        self.key = os.urandom(32)

    def wrap(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.key).encrypt(nonce, plaintext, b"kek")

    def unwrap(self, ciphertext: bytes) -> bytes:
        return AESGCM(self.key).decrypt(ciphertext[:12], ciphertext[12:], b"kek")


# Method names are the gRPC service's (Status, Decrypt, ...).
class _V2(kms_v2_pb2_grpc.KeyManagementServiceServicer):  # type: ignore[misc]
    def __init__(self, plugin: KmsPlugin) -> None:
        self.p = plugin

    async def Status(self, request: Any, context: Any) -> Any:
        self.p.calls["v2.Status"] += 1
        return kms_v2_pb2.StatusResponse(version="v2", healthz="ok", key_id=KEY_ID)

    async def Decrypt(self, request: Any, context: Any) -> Any:
        self.p.calls["v2.Decrypt"] += 1
        if request.key_id != KEY_ID or dict(request.annotations) != ANNOTATIONS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown key id")
        try:
            plain = self.p.kek.unwrap(request.ciphertext)
        except Exception:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot unwrap")
        return kms_v2_pb2.DecryptResponse(plaintext=plain)

    async def Encrypt(self, request: Any, context: Any) -> Any:
        self.p.calls["v2.Encrypt"] += 1
        return kms_v2_pb2.EncryptResponse(
            ciphertext=self.p.kek.wrap(request.plaintext), key_id=KEY_ID, annotations=ANNOTATIONS
        )


class _V1(kms_v1beta1_pb2_grpc.KeyManagementServiceServicer):  # type: ignore[misc]
    def __init__(self, plugin: KmsPlugin) -> None:
        self.p = plugin

    async def Version(self, request: Any, context: Any) -> Any:
        self.p.calls["v1.Version"] += 1
        return kms_v1beta1_pb2.VersionResponse(version="v1beta1", runtime_name="test", runtime_version="0")

    async def Decrypt(self, request: Any, context: Any) -> Any:
        self.p.calls["v1.Decrypt"] += 1
        try:
            plain = self.p.kek.unwrap(request.cipher)
        except Exception:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot unwrap")
        return kms_v1beta1_pb2.DecryptResponse(plain=plain)

    async def Encrypt(self, request: Any, context: Any) -> Any:
        self.p.calls["v1.Encrypt"] += 1
        return kms_v1beta1_pb2.EncryptResponse(cipher=self.p.kek.wrap(request.plain))


class KmsPlugin:
    """Serves both plugin APIs on ``unix://<socket>``; start() / stop() from synchronous tests."""

    def __init__(self, socket: Path, kek: TestKek | None = None) -> None:
        self.socket = socket
        self.endpoint = f"unix://{socket}"
        self.kek = kek or TestKek()
        self.calls: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-kms-plugin", daemon=True)
        self._server: grpc.aio.Server | None = None

    def start(self) -> KmsPlugin:
        if not self._thread.is_alive():
            self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        server = grpc.aio.server()
        kms_v2_pb2_grpc.add_KeyManagementServiceServicer_to_server(_V2(self), server)
        kms_v1beta1_pb2_grpc.add_KeyManagementServiceServicer_to_server(_V1(self), server)
        server.add_insecure_port(self.endpoint)
        await server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            asyncio.run_coroutine_threadsafe(server.stop(None), self._loop).result(timeout=10)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
