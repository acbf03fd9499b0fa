"""The retry policy and the error translation as pure functions: the rules the
end-to-end fault tests rely on, checked at their edges."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

import pytest

from services.config import Settings
from services.errors import ProviderError
from services.providers.upstream_errors import redact, retry_after_s, status_error
from worker.retry import AttemptClock, RetryPolicy, TimeLimits

POLICY = RetryPolicy(attempts=4, backoff_base_s=0.5, backoff_cap_s=4.0, retry_after_max_s=30)


def retryable(retry_after: float | None = None) -> ProviderError:
    return ProviderError("provider_error", "x", retryable=True, retry_after_s=retry_after)


def test_backoff_grows_exponentially_with_jitter_under_the_cap() -> None:
    for retry_number, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [POLICY.backoff_s(retry_number) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not one fixed value


def test_attempts_are_bounded_and_final_errors_are_not_retried() -> None:
    assert POLICY.delay_before_retry(retryable(), 3, remaining_s=100) is not None
    assert POLICY.delay_before_retry(retryable(), 4, remaining_s=100) is None
    final = ProviderError("authentication_error", "x", retryable=False)
    assert POLICY.delay_before_retry(final, 1, remaining_s=100) is None


def test_retry_after_is_honoured_up_to_its_limit_and_the_total_deadline() -> None:
    assert POLICY.delay_before_retry(retryable(7.0), 1, remaining_s=100) == 7.0
    assert POLICY.delay_before_retry(retryable(31.0), 1, remaining_s=100) is None
    assert POLICY.delay_before_retry(retryable(7.0), 1, remaining_s=5) is None


@pytest.mark.parametrize(
    ("status", "body_type", "expected"),
    [
        (400, "invalid_request_error", ("invalid_request_error", False)),
        (401, None, ("authentication_error", False)),
        (403, None, ("permission_error", False)),
        (404, None, ("not_found_error", False)),
        (408, None, ("timeout", True)),
        (409, None, ("provider_error", True)),
        (422, None, ("invalid_request_error", False)),
        (429, None, ("rate_limit_error", True)),
        (500, None, ("provider_error", True)),
        (502, None, ("provider_error", True)),
        (503, "overloaded_error", ("overloaded_error", True)),
        (529, None, ("overloaded_error", True)),
        (418, None, ("invalid_request_error", False)),
        (200, "overloaded_error", ("overloaded_error", True)),  # an SSE error event
        (None, "server_error", ("provider_error", True)),
        (200, "invalid_request_error", ("invalid_request_error", False)),
    ],
)
def test_status_and_body_type_decide_type_and_retryable(
    status: int | None, body_type: str | None, expected: tuple[str, bool]
) -> None:
    error = status_error(
        status, body_type=body_type, body_code=None, upstream_message="m", retry_after=None
    )
    assert (error.error_type, error.retryable) == expected


def test_a_mid_stream_error_with_an_http_code_is_classified_by_it() -> None:
    error = status_error(
        None,
        body_type="BadRequestError",
        body_code="400",
        upstream_message="prompt too long",
        retry_after=None,
    )
    assert (error.error_type, error.retryable) == ("invalid_request_error", False)
    assert "mid-stream" in error.message and "prompt too long" in error.message


def test_insufficient_quota_is_not_worth_retrying() -> None:
    error = status_error(
        429,
        body_type="insufficient_quota",
        body_code="insufficient_quota",
        upstream_message=None,
        retry_after=None,
    )
    assert (error.error_type, error.retryable) == ("rate_limit_error", False)


def test_retry_after_headers() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert retry_after_s({}) is None
    assert retry_after_s({"retry-after": "soon"}) is None
    later = email.utils.formatdate(time.time() + 20, usegmt=True)
    parsed = retry_after_s({"retry-after": later})
    assert parsed is not None and 15 <= parsed <= 21


def test_keys_never_survive_in_messages() -> None:
    secret = "sk-proj-abcdefghijklmnop"
    assert secret not in redact(f"Incorrect API key provided: {secret}.")
    assert "my-own-key-123456" not in redact("key my-own-key-123456", ("my-own-key-123456",))
    assert redact("max_tokens is too large") == "max_tokens is too large"


async def _silent() -> AsyncGenerator[int, None]:
    yield 1
    await asyncio.sleep(3600)
    yield 2


async def _read(
    clock: AttemptClock, chunks: AsyncGenerator[int, None], *, busy_s: float = 0.0
) -> list[int]:
    """Read a provider's stream as an attempt does (worker/jobs.py `_stream_once`),
    spending `busy_s` on each chunk as a slow publish would."""
    received: list[int] = []
    async with aclosing(chunks):
        with clock.watch():
            async for chunk in chunks:
                clock.received()
                received.append(chunk)
                if busy_s:
                    await asyncio.sleep(busy_s)
                clock.waiting()
    return received


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (TimeLimits(first_token_s=60, idle_s=0.05, total_s=60), "idle timeout"),
        (TimeLimits(first_token_s=60, idle_s=60, total_s=0.05), "total timeout"),
    ],
)
async def test_attempt_clock_names_the_limit_that_fired(limits: TimeLimits, expected: str) -> None:
    loop = asyncio.get_running_loop()
    clock = AttemptClock(limits, total_deadline=loop.time() + limits.total_s)
    with pytest.raises(ProviderError) as raised:
        await _read(clock, _silent())
    assert raised.value.error_type == "timeout"
    assert expected in raised.value.message


async def _never() -> AsyncGenerator[int, None]:
    await asyncio.sleep(3600)
    yield 1


async def _two() -> AsyncGenerator[int, None]:
    yield 1
    yield 2


async def test_a_provider_that_never_starts_hits_the_first_token_limit() -> None:
    limits = TimeLimits(first_token_s=0.05, idle_s=60, total_s=60)
    clock = AttemptClock(limits, total_deadline=asyncio.get_running_loop().time() + 60)
    with pytest.raises(ProviderError, match=r"first_token timeout, 0\.05 s") as raised:
        await _read(clock, _never())
    assert raised.value.retryable


async def test_the_end_of_the_stream_ends_the_read_not_a_timeout() -> None:
    limits = TimeLimits(first_token_s=60, idle_s=60, total_s=60)
    clock = AttemptClock(limits, total_deadline=asyncio.get_running_loop().time() + 60)
    assert await _read(clock, _two()) == [1, 2]


async def _paced(gap_s: float, count: int) -> AsyncGenerator[int, None]:
    for n in range(count):
        await asyncio.sleep(gap_s)
        yield n


async def test_a_live_stream_longer_than_the_idle_limit_never_times_out() -> None:
    """The attempt's one timer fires and re-arms while chunks keep coming."""
    limits = TimeLimits(first_token_s=0.2, idle_s=0.05, total_s=60)
    clock = AttemptClock(limits, total_deadline=asyncio.get_running_loop().time() + 60)
    # 0.4 s in all: eight idle limits
    assert await _read(clock, _paced(0.02, 20)) == list(range(20))


async def test_time_spent_between_waits_is_not_idleness() -> None:
    """Only the wait for the provider counts (a slow publish is not a silent model)."""
    limits = TimeLimits(first_token_s=0.05, idle_s=0.05, total_s=60)
    clock = AttemptClock(limits, total_deadline=asyncio.get_running_loop().time() + 60)
    # the reader is busy for three idle limits on each chunk
    assert await _read(clock, _two(), busy_s=0.15) == [1, 2]


async def test_a_short_idle_limit_after_a_long_first_token_limit_fires_on_time() -> None:
    """The timer armed for the first token (60 s) is moved earlier for the idle limit."""
    limits = TimeLimits(first_token_s=60, idle_s=0.05, total_s=120)
    clock = AttemptClock(limits, total_deadline=asyncio.get_running_loop().time() + 120)
    with pytest.raises(ProviderError, match="idle timeout"):
        await asyncio.wait_for(_read(clock, _silent()), timeout=5)


async def test_a_cancel_from_outside_stays_a_cancel_not_a_timeout() -> None:
    limits = TimeLimits(first_token_s=60, idle_s=60, total_s=60)
    clock = AttemptClock(limits, total_deadline=asyncio.get_running_loop().time() + 60)
    reading = asyncio.create_task(_read(clock, _never()))
    await asyncio.sleep(0.05)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading


async def test_a_timeout_interrupts_the_wait_and_closes_the_provider_stream() -> None:
    """The provider's generator is stopped where it waits, and its `finally` runs
    (where a real provider closes its HTTP response)."""
    closed = asyncio.Event()

    async def upstream() -> AsyncGenerator[int, None]:
        try:
            yield 1
            await asyncio.sleep(3600)
            yield 2
        finally:
            closed.set()

    limits = TimeLimits(first_token_s=60, idle_s=0.05, total_s=60)
    clock = AttemptClock(limits, total_deadline=asyncio.get_running_loop().time() + 60)
    with pytest.raises(ProviderError, match="idle timeout"):
        await _read(clock, upstream())
    assert closed.is_set()


def test_a_longer_retry_after_wins_over_the_backoff() -> None:
    """The provider said when it can take the request again; coming back sooner
    would only be refused again."""
    quick = RetryPolicy(attempts=3, backoff_base_s=0.01, backoff_cap_s=0.02, retry_after_max_s=30)
    assert quick.delay_before_retry(retryable(4.0), 1, remaining_s=100) == 4.0
    delay = quick.delay_before_retry(retryable(0.001), 1, remaining_s=100)
    assert delay is not None and 0.005 <= delay <= 0.01


def test_policy_and_limits_follow_the_settings() -> None:
    settings = Settings(
        redis_url="redis://127.0.0.1:1/0",
        provider_attempts=7,
        retry_backoff_base_s=0.3,
        retry_backoff_cap_s=9.0,
        retry_after_max_s=11.0,
        first_token_timeout_s=4.0,
        idle_timeout_s=5.0,
        total_timeout_s=600.0,
    )
    assert RetryPolicy.from_settings(settings) == RetryPolicy(7, 0.3, 9.0, 11.0)
    assert TimeLimits.from_settings(settings) == TimeLimits(4.0, 5.0, 600.0)
