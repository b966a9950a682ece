"""One retry policy per boundary, declared once (tenacity).

Only our own retryable error types are retried: ``EtcdUnavailable`` (connection refused or lost,
no leader, deadline exceeded) at the etcd boundary, ``JournalUnavailable`` at the journal's,
``KmsUnavailable`` at a KMS plugin's (values that need the plugin wait, they are not dropped). Waits
are exponential with full jitter and a ceiling; attempts never stop (a replicator that gives up
during an outage is worse than one that waits), each retry logs one warning and counts.
``sleep`` is injectable for tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_never,
    wait_random_exponential,
)

from replicator.errors import JournalUnavailable, KmsUnavailable
from replicator.etcd import EtcdUnavailable
from replicator.observability import get_logger

log = get_logger("retry")
T = TypeVar("T")


Sleep = Callable[[float], Awaitable[None]]


def _policy(error: type[BaseException], *, multiplier: float, ceiling: float, sleep: Sleep) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type(error),
        wait=wait_random_exponential(multiplier=multiplier, max=ceiling),
        stop=stop_never,
        sleep=sleep,
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )


def etcd_policy(*, sleep: Sleep = asyncio.sleep, ceiling: float = 15.0) -> AsyncRetrying:
    return _policy(EtcdUnavailable, multiplier=0.2, ceiling=ceiling, sleep=sleep)


def journal_policy(*, sleep: Sleep = asyncio.sleep) -> AsyncRetrying:
    return _policy(JournalUnavailable, multiplier=0.5, ceiling=15.0, sleep=sleep)


def kms_policy(*, sleep: Sleep = asyncio.sleep) -> AsyncRetrying:
    """A KMS plugin outage: the values that need it wait (in order) until the plugin is back."""
    return _policy(KmsUnavailable, multiplier=0.5, ceiling=15.0, sleep=sleep)


async def waiting_for_kms(fn: Callable[[], T]) -> T:
    """``fn()``; only if a KMS plugin is unreachable, retry it under ``kms_policy`` (the fast path
    builds no retry machinery: this runs for every key)."""
    try:
        return fn()
    except KmsUnavailable:
        pass

    async def attempt() -> T:
        return fn()

    result: T = await retrying(kms_policy(), attempt)
    return result


async def retrying(policy: AsyncRetrying, fn: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``fn()`` under ``policy``."""
    async for attempt in policy:
        with attempt:
            return await fn()
    raise AssertionError("unreachable: the policies never stop")
