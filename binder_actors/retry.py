"""One retry policy for calls whose failures may pass: doubling delays with jitter, a predicate per caller.

Built on tenacity rather than stamina: our predicates look at answers as well as errors (a 502 from
the proxy, a registry's 429 are responses, not exceptions), which tenacity's `retry_if_result`
handles and stamina by design does not. The predicates stay with the callers (HubClient, OCIRegistry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, retry_if_result, stop_after_attempt
from tenacity import wait_exponential_jitter as doubling_with_jitter

T = TypeVar("T")


def _never(_: object) -> bool:
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is repeated while its failure looks temporary."""

    attempts: int  # calls in all, the first included
    first_delay: float  # seconds before the second call; doubled before each next one
    max_delay: float = 10.0  # no single wait is longer
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        retry_on_error: Callable[[BaseException], bool] = _never,
        retry_on_result: Callable[[T], bool] = _never,
        on_failure: Callable[[int, T | BaseException], None] | None = None,
    ) -> T:
        """`attempt()`'s first answer the predicates accept; after `attempts` calls, its last one.

        The last answer comes back as is (a result returned, an error raised), so the caller words the
        failure in its own terms. `on_failure(number, result or error)` sees every retryable failure.
        """

        def report(state: RetryCallState) -> None:
            if on_failure is not None and state.outcome is not None:
                outcome = state.outcome
                on_failure(state.attempt_number, outcome.exception() if outcome.failed else outcome.result())

        def last_answer(state: RetryCallState) -> T:
            assert state.outcome is not None  # tenacity gives up only after an attempt
            return state.outcome.result()  # the last result, or its error raised

        async def once() -> T:  # a coroutine function: tenacity would not await what a lambda returns
            return await attempt()

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=doubling_with_jitter(multiplier=self.first_delay, max=self.max_delay, jitter=self.first_delay),
            retry=retry_if_exception(retry_on_error) | retry_if_result(retry_on_result),
            after=report,
            retry_error_callback=last_answer,
            sleep=self.sleep,
        )
        return await retrying(once)
