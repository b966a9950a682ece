"""etcd errors, translated from gRPC in one place.

``translate()`` is the only function that looks at a gRPC status; it walks ``_TABLE`` (status
code, message fragment -> class) top to bottom. The fragments are etcd's own error strings
(``etcdserver: ...`` in ``api/v3rpc/rpctypes``), which are stable across 3.4-3.6.

``EtcdUnavailable`` (and its ``EtcdTimeout``) are the only retryable errors: the caller's retry
policy may try again, on the next endpoint. Everything else is a fact about the request.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from replicator.errors import ReplicatorError


class EtcdError(ReplicatorError):
    """Base of everything the etcd adapter raises."""


class EtcdUnavailable(EtcdError):
    """No usable server right now (connection refused, no leader, server stopping). Retryable."""


class EtcdTimeout(EtcdUnavailable):
    """A call did not finish within its deadline (server paused, partitioned, overloaded)."""


class EtcdCompacted(EtcdError):
    """The requested revision is older than the compaction point; a resync is needed."""

    def __init__(self, compact_revision: int, message: str = "") -> None:
        super().__init__(
            message or f"etcdserver: mvcc: required revision has been compacted (at {compact_revision})"
        )
        self.compact_revision = compact_revision


class EtcdFutureRevision(EtcdError):
    """The requested revision is newer than the store's (a restored or different cluster?)."""


class EtcdRequestTooLarge(EtcdError):
    """A request or response exceeds a size limit (server --max-request-bytes or client max)."""


class EtcdTooManyOps(EtcdError):
    """A transaction has more operations than the server's --max-txn-ops."""


class EtcdDuplicateKey(EtcdError):
    """A transaction writes the same key twice."""


class EtcdNoSpace(EtcdError):
    """The backend database hit --quota-backend-bytes; etcd raised a NOSPACE alarm."""


class EtcdAuthError(EtcdError):
    """Authentication failed (bad user or password, invalid or expired token)."""


class EtcdInvalidToken(EtcdAuthError):
    """The auth token is no longer valid; the client re-authenticates once and retries."""


class EtcdPermissionDenied(EtcdError):
    """The authenticated user lacks the role needed for this key range or call."""


class EtcdWatchCanceled(EtcdError):
    """The server canceled a watch for a reason other than compaction."""


Code = grpc.StatusCode  # grpc has no type hints: annotations below say grpc.StatusCode
_Factory = Callable[[str], EtcdError]

# (status code or None for any, message fragment or None for any, factory). First match wins.
_TABLE: tuple[tuple[grpc.StatusCode | None, str | None, _Factory], ...] = (
    (None, "required revision has been compacted", lambda m: EtcdCompacted(0, m)),
    (None, "required revision is a future revision", EtcdFutureRevision),
    (None, "request is too large", EtcdRequestTooLarge),
    (None, "too many operations in txn request", EtcdTooManyOps),
    (None, "duplicate key given in txn request", EtcdDuplicateKey),
    (None, "database space exceeded", EtcdNoSpace),
    (None, "invalid auth token", EtcdInvalidToken),
    (None, "authentication failed", EtcdAuthError),
    (None, "user name is empty", EtcdAuthError),
    (None, "authentication is not enabled", EtcdAuthError),
    (None, "permission denied", EtcdPermissionDenied),
    (Code.RESOURCE_EXHAUSTED, "larger than max", EtcdRequestTooLarge),
    (Code.DEADLINE_EXCEEDED, None, EtcdTimeout),
    (None, "request timed out", EtcdTimeout),
    (Code.UNAVAILABLE, None, EtcdUnavailable),
    (Code.CANCELLED, None, EtcdUnavailable),
    (Code.UNAUTHENTICATED, None, EtcdAuthError),
    (Code.PERMISSION_DENIED, None, EtcdPermissionDenied),
)


def classify(code: grpc.StatusCode | None, details: str, *, endpoint: str = "") -> EtcdError:
    """Map a gRPC status to our error; the message keeps etcd's text and names the endpoint."""
    message = f"{endpoint}: {details}" if endpoint else details
    for want_code, fragment, factory in _TABLE:
        if want_code is not None and want_code != code:
            continue
        if fragment is not None and fragment not in details:
            continue
        return factory(message)
    return EtcdError(f"{message} ({code.name if code else 'unknown'})")


def translate(exc: grpc.RpcError, *, endpoint: str = "") -> EtcdError:
    """Translate a gRPC exception (sync or aio) into an ``EtcdError``."""
    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    return classify(code, details, endpoint=endpoint)
