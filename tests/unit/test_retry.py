"""The one retry policy (binder_actors/retry.py): what it retries, how long it waits, when it gives up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from binder_actors.retry import RetryPolicy


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


def run(policy: RetryPolicy, answers: list[object], **predicates: object) -> tuple[object, int, list[int]]:
    """(final answer or error, calls made, attempt numbers reported as failures)."""
    remaining, failures = list(answers), []

    async def attempt() -> object:
        answer = remaining.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def scenario() -> object:
        try:
            return await policy.call(attempt, on_failure=lambda n, _: failures.append(n), **predicates)
        except Exception as error:
            return error

    final = asyncio.run(scenario())
    return final, len(answers) - len(remaining), failures


def recording() -> tuple[list[float], Callable[[float], Awaitable[None]]]:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    return delays, sleep


def transient(error: BaseException) -> bool:
    return isinstance(error, Transient)


def busy(status: object) -> bool:
    return status in (502, 503)


NOW = RetryPolicy(attempts=3, first_delay=0)


@pytest.mark.parametrize(
    ("answers", "final", "calls", "failures"),
    [
        ([200], 200, 1, []),
        ([Transient(), 200], 200, 2, [1]),
        ([502, 503, 200], 200, 3, [1, 2]),
        ([404, 200], 404, 1, []),  # an answer the predicate does not name is final
        ([Fatal("no"), 200], Fatal, 1, []),  # so is an error it does not name
        ([Transient(), 502, Transient("last"), 200], Transient, 3, [1, 2, 3]),  # gives up with the last error
        ([Transient(), Transient(), 503, 200], 503, 3, [1, 2, 3]),  # or the last answer
    ],
)
def test_retries_only_what_the_predicates_name_and_gives_up_after_the_attempts(answers, final, calls, failures):
    got, made, reported = run(NOW, answers, retry_on_error=transient, retry_on_result=busy)
    if isinstance(final, type):
        assert isinstance(got, final)
    else:
        assert got == final
    assert (made, reported) == (calls, failures)


def test_the_error_given_up_with_is_the_last_one():
    got, _, _ = run(NOW, [Transient("first"), Transient("second"), Transient("last")], retry_on_error=transient)
    assert str(got) == "last"


def test_without_predicates_nothing_is_retried():
    got, made, _ = run(NOW, [Transient(), 200])
    assert isinstance(got, Transient) and made == 1


def test_delays_double_with_bounded_jitter_up_to_the_maximum():
    delays, sleep = recording()
    policy = RetryPolicy(attempts=6, first_delay=1.0, max_delay=5.0, sleep=sleep)
    run(policy, [503] * 6, retry_on_result=busy)
    assert len(delays) == 5  # none after the last attempt
    for delay, base in zip(delays, [1.0, 2.0, 4.0, 5.0, 5.0], strict=True):
        assert base <= delay <= min(base + 1.0, 5.0)


def test_a_lambda_returning_a_coroutine_is_awaited_and_retried():
    answers = iter([503, 200])

    async def answer() -> int:
        return next(answers)

    async def scenario() -> int:
        return await NOW.call(lambda: answer(), retry_on_result=busy)

    assert asyncio.run(scenario()) == 200
