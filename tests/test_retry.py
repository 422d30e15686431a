"""Retry policy: durations, merging, backoff with full jitter, Retry-After, tenacity."""

from __future__ import annotations

import math
import random
from concurrent.futures import Future
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from tenacity import RetryCallState

from platypus.exceptions import (
    DeliveryError,
    MissingDependencyError,
    PermanentError,
    RetryableError,
)
from platypus.retry import RetryPolicy, RetryPolicyOverride, parse_duration

# -- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (3, 3.0),
        (1.5, 1.5),
        ("2", 2.0),
        ("2.5", 2.5),
        ("250ms", 0.25),
        ("2s", 2.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        (" 10 s ", 10.0),
        ("0.5m", 30.0),
        ("7d", 7 * 86400.0),
    ],
)
def test_parse_duration_reads_numbers_and_unit_strings(value: Any, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "s", "2w", "1.s", "-1s", "2 sec", "1e3", None, [1], "1h30m"])
def test_parse_duration_refuses_other_forms_with_a_hint(value: Any) -> None:
    with pytest.raises(ValueError, match="use seconds"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_refuses_booleans(value: bool) -> None:
    with pytest.raises(ValueError, match="number of seconds"):
        parse_duration(value)


def test_parse_duration_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(-0.1)


def test_parse_duration_refuses_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        parse_duration(math.nan)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h", ""]))
def test_parse_duration_scales_by_unit(amount: int, unit: str) -> None:
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}[unit]
    assert parse_duration(f"{amount}{unit}") == pytest.approx(amount * scale)


def test_policy_fields_accept_duration_strings() -> None:
    policy = RetryPolicy.model_validate({"initial_delay": "250ms", "max_elapsed": "10m"})
    assert (policy.initial_delay, policy.max_elapsed) == (0.25, 600.0)


# -- the policy ------------------------------------------------------------------------


def test_policy_defaults() -> None:
    assert RetryPolicy().model_dump() == {
        "max_attempts": 30,
        "initial_delay": 1.0,
        "max_delay": 60.0,
        "multiplier": 2.0,
        "jitter": 0.5,
        "max_elapsed": 600.0,
        "respect_retry_after": True,
        "max_retry_after": 300.0,
        "dependency_wait": 600.0,
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"max_attempts": 1001},
        {"multiplier": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"unknown": 1},
    ],
)
def test_policy_refuses_out_of_range_and_unknown_fields(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(bad)


def test_merged_with_none_is_the_same_policy() -> None:
    policy = RetryPolicy()
    assert policy.merged(None) is policy


def test_merged_replaces_only_the_fields_the_override_sets() -> None:
    base = RetryPolicy(max_attempts=3, initial_delay=1.0)
    merged = base.merged(RetryPolicyOverride.model_validate({"max_delay": "5s"}))
    assert merged == base.model_copy(update={"max_delay": 5.0})


def test_merged_override_fields_set_to_null_inherit() -> None:
    base = RetryPolicy(max_attempts=3)
    override = RetryPolicyOverride.model_validate({"max_attempts": None, "multiplier": 3})
    assert base.merged(override) == base.model_copy(update={"multiplier": 3.0})


def test_merging_twice_applies_later_overrides_last() -> None:
    flow = RetryPolicyOverride(max_attempts=8, initial_delay=2.0)
    step = RetryPolicyOverride(max_attempts=2)
    merged = RetryPolicy().merged(flow).merged(step)
    assert (merged.max_attempts, merged.initial_delay) == (2, 2.0)


def test_override_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        RetryPolicyOverride.model_validate({"attempts": 3})


def test_backoff_bound_grows_exponentially_then_caps() -> None:
    policy = RetryPolicy(initial_delay=0.5, multiplier=2.0, max_delay=5.0)
    assert [policy.backoff_bound(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_bound_of_attempt_zero_or_less_is_the_initial_delay() -> None:
    policy = RetryPolicy(initial_delay=0.7)
    assert policy.backoff_bound(0) == policy.backoff_bound(-3) == 0.7


def test_backoff_bound_of_a_huge_attempt_is_the_cap() -> None:
    assert RetryPolicy(max_delay=9.0).backoff_bound(10**9) == 9.0


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=200),
    st.floats(min_value=0.0, max_value=10.0),
    st.floats(min_value=1.0, max_value=4.0),
    st.floats(min_value=0.0, max_value=100.0),
)
def test_backoff_bound_never_shrinks_and_never_exceeds_the_cap(
    attempt: int, initial: float, multiplier: float, cap: float
) -> None:
    policy = RetryPolicy(initial_delay=initial, multiplier=multiplier, max_delay=cap)
    assert policy.backoff_bound(attempt) <= policy.backoff_bound(attempt + 1) <= cap


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**32))
def test_delay_is_full_jitter_within_zero_and_the_bound(attempt: int, seed: int) -> None:
    policy = RetryPolicy(jitter=1.0)
    delay = policy.delay(attempt, rng=random.Random(seed))
    assert 0.0 <= delay <= policy.backoff_bound(attempt)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=30),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_between_the_jitter_floor_and_the_bound(
    attempt: int, jitter: float, seed: int
) -> None:
    policy = RetryPolicy(jitter=jitter)
    bound = policy.backoff_bound(attempt)
    assert bound * (1 - jitter) <= policy.delay(attempt, rng=random.Random(seed)) <= bound


def test_the_default_jitter_keeps_half_of_each_bound_as_a_floor() -> None:
    policy = RetryPolicy(initial_delay=1.0)
    rng = random.Random(1)
    delays = [policy.delay(1, rng=rng) for _ in range(500)]
    assert min(delays) >= 0.5
    assert min(delays) < 0.55
    assert max(delays) > 0.95


def test_no_jitter_waits_the_bound() -> None:
    policy = RetryPolicy(initial_delay=1.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_delay_is_reproducible_with_a_seeded_rng() -> None:
    policy = RetryPolicy()
    first = [policy.delay(n, rng=random.Random(7)) for n in range(1, 6)]
    again = [policy.delay(n, rng=random.Random(7)) for n in range(1, 6)]
    assert first == again


def test_full_jitter_spreads_over_the_whole_range() -> None:
    policy = RetryPolicy(initial_delay=1.0, jitter=1.0)
    rng = random.Random(1)
    delays = [policy.delay(1, rng=rng) for _ in range(500)]
    assert min(delays) < 0.1
    assert max(delays) > 0.9


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=30),
    st.floats(min_value=0.0, max_value=1000.0),
    st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_never_shorter_than_retry_after_up_to_the_cap(
    attempt: int, retry_after: float, seed: int
) -> None:
    policy = RetryPolicy(max_retry_after=120.0)
    delay = policy.delay(attempt, retry_after, rng=random.Random(seed))
    assert delay >= min(retry_after, 120.0)
    assert delay <= max(min(retry_after, 120.0), policy.backoff_bound(attempt))


def test_retry_after_longer_than_the_cap_is_capped() -> None:
    policy = RetryPolicy(initial_delay=0.0, max_retry_after=30.0)
    assert policy.delay(1, 3600.0, rng=random.Random(0)) == 30.0


def test_negative_retry_after_counts_as_zero() -> None:
    policy = RetryPolicy(initial_delay=0.0)
    assert policy.delay(1, -5.0, rng=random.Random(0)) == 0.0


def test_retry_after_is_ignored_when_disabled() -> None:
    policy = RetryPolicy(respect_retry_after=False, initial_delay=1.0)
    with_header = policy.delay(1, 500.0, rng=random.Random(3))
    assert with_header == policy.delay(1, rng=random.Random(3))
    assert with_header <= 1.0


@pytest.mark.parametrize(
    ("error", "attempt", "elapsed", "expected"),
    [
        (RetryableError("busy"), 1, 0.0, True),
        (RetryableError("busy"), 29, 599.0, True),
        (RetryableError("busy"), 30, 0.0, False),
        (RetryableError("busy"), 1, 600.0, False),
        (PermanentError("bad"), 1, 0.0, False),
        (DeliveryError("unclassified"), 1, 0.0, False),
        (ValueError("bug"), 1, 0.0, False),
        (TimeoutError(), 1, 0.0, False),
    ],
)
def test_should_retry_only_retryable_delivery_errors_within_budget(
    error: BaseException, attempt: int, elapsed: float, expected: bool
) -> None:
    assert RetryPolicy().should_retry(error, attempt, elapsed) is expected


@pytest.mark.parametrize(
    ("attempt", "elapsed", "expected"),
    [
        (1, 0.0, True),
        (5, 10.0, True),  # past max_attempts: the count does not apply
        (500, 599.0, True),
        (2, 600.0, False),  # the dependency_wait is over
    ],
)
def test_a_missing_dependency_is_retried_for_the_dependency_wait_however_many_attempts(
    attempt: int, elapsed: float, expected: bool
) -> None:
    policy = RetryPolicy(max_attempts=5, max_elapsed=60.0, dependency_wait=600.0)
    error = MissingDependencyError("customer C-1 does not exist yet")
    assert policy.should_retry(error, attempt, elapsed) is expected


def test_a_dependency_wait_of_zero_dead_letters_a_missing_dependency_at_once() -> None:
    policy = RetryPolicy(dependency_wait=0)
    assert not policy.should_retry(MissingDependencyError("no customer"), 1, 0.0)


def test_a_missing_dependency_is_retryable_and_other_errors_keep_their_budget() -> None:
    policy = RetryPolicy(max_attempts=3, max_elapsed=60.0, dependency_wait=3600.0)
    assert MissingDependencyError("x").retryable
    assert not policy.should_retry(RetryableError("503"), 3, 1.0)
    assert not policy.should_retry(RetryableError("503"), 1, 61.0)
    assert policy.budget(RetryableError("503")) == 60.0
    assert policy.budget(MissingDependencyError("x")) == 3600.0


def test_dependency_wait_is_overridden_like_the_other_fields() -> None:
    override = RetryPolicyOverride.model_validate({"dependency_wait": "30m"})
    assert RetryPolicy().merged(override).dependency_wait == 1800.0


# -- how long an outage a policy rides out ------------------------------------------------


def test_the_default_policy_rides_out_ten_minutes_of_outage() -> None:
    # The figure docs/operations.md gives, computed from the real defaults: far
    # more than the 20-second outage that dead-lettered events with the old ones.
    policy = RetryPolicy()
    assert policy.rides_out() == policy.max_elapsed == 600.0
    assert policy.rides_out() >= 20.0


def test_the_old_defaults_rode_out_nothing_for_sure() -> None:
    old = RetryPolicy(max_attempts=5, initial_delay=0.5, jitter=1.0)
    assert old.rides_out() == 0.0
    assert RetryPolicy(max_attempts=5, initial_delay=0.5, jitter=0.0).rides_out() == 7.5


def test_rides_out_is_the_sum_of_the_shortest_waits_when_attempts_run_out_first() -> None:
    policy = RetryPolicy(max_attempts=4, initial_delay=2.0, jitter=0.5, max_elapsed=3600)
    assert policy.rides_out() == 1.0 + 2.0 + 4.0


def test_rides_out_is_capped_by_max_elapsed() -> None:
    assert RetryPolicy(max_elapsed=120).rides_out() == 120.0
    assert RetryPolicy(max_delay=30).rides_out() == 375.5


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=1, max_value=40),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=2**32),
)
def test_any_draw_of_waits_lasts_at_least_what_rides_out_says(
    attempts: int, jitter: float, seed: int
) -> None:
    policy = RetryPolicy(max_attempts=attempts, jitter=jitter, max_elapsed=10**6)
    rng = random.Random(seed)
    waits = sum(policy.delay(n, rng=rng) for n in range(1, attempts))
    assert waits >= policy.rides_out() * (1 - 1e-9)


def test_scaled_multiplies_every_duration_and_keeps_the_attempts() -> None:
    policy = RetryPolicy().scaled(0.01)
    assert policy.max_attempts == 30
    assert (policy.initial_delay, policy.max_delay, policy.max_elapsed) == pytest.approx(
        (0.01, 0.6, 6.0)
    )
    assert policy.max_retry_after == pytest.approx(3.0)
    assert policy.rides_out() == pytest.approx(RetryPolicy().rides_out() * 0.01)


# -- tenacity --------------------------------------------------------------------------


class Flaky:
    """Raises the given errors in turn, then returns "ok"; counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def test_retryable_errors_are_retried_until_success() -> None:
    sleeps = Sleeps()
    call = Flaky(RetryableError("503"), RetryableError("503"))
    policy = RetryPolicy(initial_delay=0.5, max_delay=1.0)
    assert await policy.retrying(sleep=sleeps)(call) == "ok"
    assert call.calls == 3
    assert len(sleeps) == 2
    assert all(0.0 <= s <= 1.0 for s in sleeps)


async def test_sleeps_respect_retry_after() -> None:
    sleeps = Sleeps()
    call = Flaky(RetryableError("429", retry_after=7.0), RetryableError("429", retry_after=3.0))
    assert await RetryPolicy(initial_delay=0.5).retrying(sleep=sleeps)(call) == "ok"
    assert sleeps == [7.0, 3.0]


async def test_retry_after_in_tenacity_is_capped_by_max_retry_after() -> None:
    sleeps = Sleeps()
    call = Flaky(RetryableError("429", retry_after=900.0))
    policy = RetryPolicy(initial_delay=0.1, max_retry_after=20.0)
    assert await policy.retrying(sleep=sleeps)(call) == "ok"
    assert sleeps == [20.0]


async def test_permanent_error_is_not_retried_and_is_reraised() -> None:
    sleeps = Sleeps()
    error = PermanentError("400")
    call = Flaky(error)
    with pytest.raises(PermanentError) as caught:
        await RetryPolicy().retrying(sleep=sleeps)(call)
    assert caught.value is error
    assert call.calls == 1
    assert sleeps == []


async def test_plain_exception_is_not_retried() -> None:
    call = Flaky(ValueError("bug"))
    sleeps = Sleeps()
    with pytest.raises(ValueError, match="bug"):
        await RetryPolicy().retrying(sleep=sleeps)(call)
    assert call.calls == 1
    assert sleeps == []


async def test_max_attempts_stops_and_reraises_the_last_error() -> None:
    errors = [RetryableError(f"503 #{n}") for n in range(1, 6)]
    call = Flaky(*errors)
    sleeps = Sleeps()
    with pytest.raises(RetryableError) as caught:
        await RetryPolicy(max_attempts=3, initial_delay=0.0).retrying(sleep=sleeps)(call)
    assert caught.value is errors[2]
    assert call.calls == 3
    assert sleeps == [0.0, 0.0]


def wait_after(policy: RetryPolicy, error: BaseException, elapsed: float) -> float:
    state = RetryCallState(policy.retrying(), fn=None, args=(), kwargs={})
    future: Future[Any] = Future()
    future.set_exception(error)
    state.outcome = future  # type: ignore[assignment]
    state.outcome_timestamp = state.start_time + elapsed
    wait: Any = policy.tenacity_kwargs()["wait"]
    return float(wait(state))


def test_wait_without_retry_after_never_sleeps_past_the_elapsed_budget() -> None:
    policy = RetryPolicy(initial_delay=100.0, max_delay=100.0, max_elapsed=10.0)
    for _ in range(50):
        assert wait_after(policy, RetryableError("x"), elapsed=9.5) <= 0.5 + 1e-9


async def test_a_missing_dependency_is_retried_past_max_attempts_until_it_exists() -> None:
    sleeps = Sleeps()
    call = Flaky(*(MissingDependencyError("no customer yet") for _ in range(7)))
    policy = RetryPolicy(max_attempts=3, initial_delay=0.0, dependency_wait=60.0)
    assert await policy.retrying(sleep=sleeps)(call) == "ok"
    assert call.calls == 8


def stops_after(policy: RetryPolicy, error: BaseException, attempt: int, elapsed: float) -> bool:
    state = RetryCallState(policy.retrying(), fn=None, args=(), kwargs={})
    future: Future[Any] = Future()
    future.set_exception(error)
    state.outcome = future  # type: ignore[assignment]
    state.attempt_number = attempt
    state.outcome_timestamp = state.start_time + elapsed
    stop: Any = policy.tenacity_kwargs()["stop"]
    return bool(stop(state))


def test_tenacity_stops_a_missing_dependency_once_the_dependency_wait_is_over() -> None:
    policy = RetryPolicy(max_attempts=2, max_elapsed=5.0, dependency_wait=100.0)
    missing = MissingDependencyError("no customer yet")
    assert not stops_after(policy, missing, attempt=40, elapsed=99.0)
    assert stops_after(policy, missing, attempt=40, elapsed=100.0)
    assert stops_after(policy, RetryableError("503"), attempt=2, elapsed=1.0)
    assert stops_after(policy, RetryableError("503"), attempt=1, elapsed=5.0)


def test_tenacity_counts_the_attempts_and_time_the_runtime_already_spent() -> None:
    policy = RetryPolicy(max_attempts=3, max_elapsed=10.0)
    stop: Any = policy.tenacity_kwargs(after_attempts=1, elapsed=4.0)["stop"]
    state = RetryCallState(policy.retrying(), fn=None, args=(), kwargs={})
    future: Future[Any] = Future()
    future.set_exception(RetryableError("503"))
    state.outcome = future  # type: ignore[assignment]
    state.attempt_number = 1
    state.outcome_timestamp = state.start_time + 1.0
    assert not stop(state)  # 2 attempts in all, 5 s in
    state.attempt_number = 2
    assert stop(state)  # 3 attempts in all: max_attempts
    state.attempt_number = 1
    state.outcome_timestamp = state.start_time + 6.0
    assert stop(state)  # 10 s in all: max_elapsed


def test_wait_for_a_missing_dependency_never_sleeps_past_the_dependency_wait() -> None:
    policy = RetryPolicy(
        initial_delay=100.0, max_delay=100.0, max_elapsed=1.0, dependency_wait=20.0
    )
    waits = [wait_after(policy, MissingDependencyError("x"), elapsed=19.0) for _ in range(50)]
    assert all(wait <= 1.0 + 1e-9 for wait in waits)
    # The budget is the dependency wait, not max_elapsed (long over by then).
    assert max(waits) > 0.5


def test_wait_with_retry_after_is_not_cut_by_the_elapsed_budget() -> None:
    policy = RetryPolicy(initial_delay=0.0, max_elapsed=10.0)
    assert wait_after(policy, RetryableError("x", retry_after=30.0), elapsed=9.5) == 30.0
