"""One retry definition: `RetryPolicy`, turned into tenacity arguments in one place.

Backoff is exponential with jitter (AWS architecture blog, "Exponential Backoff
And Jitter"): the bound after failed attempt *n* is
``min(max_delay, initial_delay * multiplier**(n-1))`` and the wait is uniform in
``[bound * (1 - jitter), bound]``. The default ``jitter: 0.5`` ("equal jitter")
spreads retries of many events over half the bound and keeps the other half as
a floor, so how long a policy rides out an outage is a guarantee
(`RetryPolicy.rides_out`), not a likelihood; ``jitter: 1`` is full jitter.
A vendor's ``Retry-After`` is honoured: the wait is never shorter than what the
vendor asked for (capped by ``max_retry_after``). Only errors classified
retryable are retried.

The defaults ride out a vendor outage of 10 minutes (``max_elapsed``): 30
attempts, the waits growing from 0.5-1 s to 30-60 s. An outage that ends
sooner is noticed within a minute of its end.
"""

from __future__ import annotations

import random
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from platypus.exceptions import DeliveryError, MissingDependencyError

__all__ = ["Duration", "RetryPolicy", "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``250ms``, ``2s``, ``5m``, ``1h``, ``7d``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '2s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(
            f"invalid duration {value!r}: use seconds (1.5) "
            "or a string like '250ms', '2s', '5m', '1h', '7d'"
        )
    if seconds != seconds:  # NaN compares false with everything, so `< 0` lets it through
        raise ValueError("a duration must be a number, not NaN")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*(ms|s|m|h|d)?\s*$"},
            ],
            "description": "Seconds, or a string such as 250ms, 2s, 5m, 1h, 7d.",
        }
    ),
]
"""Seconds, written as a number or as ``250ms``/``2s``/``5m``/``1h``/``7d`` in flows."""


class RetryPolicy(BaseModel):
    """How a step retries a delivery that failed with a retryable error.

    Set defaults in the project configuration; override per flow and per step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(
        default=30,
        ge=1,
        le=1000,
        description=(
            "Attempts in all, the first one included. The default is enough for "
            "max_elapsed to be the limit that applies."
        ),
    )
    initial_delay: Duration = Field(
        default=1.0, description="Upper bound of the first backoff, before jitter."
    )
    max_delay: Duration = Field(default=60.0, description="Cap of one backoff, before jitter.")
    multiplier: float = Field(default=2.0, ge=1.0, description="Growth of the backoff bound.")
    jitter: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description=(
            "Share of each backoff that is random: a wait is uniform in "
            "[bound * (1 - jitter), bound]. 1 is full jitter, 0 none."
        ),
    )
    max_elapsed: Duration = Field(
        default=600.0,
        description="Give up once this much time has passed since the first attempt.",
    )
    respect_retry_after: bool = Field(
        default=True, description="Wait at least as long as the vendor's Retry-After asks."
    )
    max_retry_after: Duration = Field(
        default=300.0, description="Longest Retry-After honoured; longer ones are capped."
    )
    dependency_wait: Duration = Field(
        default=600.0,
        description=(
            "How long a write that refers to a record that does not exist yet (a customer, "
            "a parent account: MissingDependencyError) keeps being retried, since the first "
            "attempt and whatever max_attempts says; 0 dead-letters it at once."
        ),
    )

    def merged(self, override: RetryPolicyOverride | None) -> RetryPolicy:
        """This policy with the fields ``override`` sets replaced."""
        if override is None:
            return self
        changes = override.model_dump(exclude_unset=True, exclude_none=True)
        return self.model_copy(update=changes) if changes else self

    def backoff_bound(self, attempt: int) -> float:
        """The upper bound of the wait after failed attempt number ``attempt`` (1-based)."""
        exponent = min(max(attempt - 1, 0), 64)
        return float(min(self.max_delay, self.initial_delay * self.multiplier**exponent))

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """The wait after failed attempt ``attempt``: jittered, at least ``Retry-After``."""
        bound = self.backoff_bound(attempt)
        jittered = (rng or _RANDOM).uniform(bound * (1.0 - self.jitter), bound)
        if retry_after is not None and self.respect_retry_after:
            return max(jittered, min(max(retry_after, 0.0), self.max_retry_after))
        return jittered

    def rides_out(self) -> float:
        """Seconds of outage this policy is sure to outlast, whatever the jitter draws.

        An outage that began by the first attempt and lasts at most this long
        ends before the last attempt: the sum of the shortest waits between the
        ``max_attempts``, capped by ``max_elapsed`` (the last wait is cut short
        so that an attempt is made at ``max_elapsed``). Time spent in the
        attempts themselves (a timeout, say) and longer ``Retry-After`` waits
        only add to it.
        """
        floor = 1.0 - self.jitter
        waits = 0.0
        for attempt in range(1, self.max_attempts):
            waits += self.backoff_bound(attempt) * floor
            if waits >= self.max_elapsed:
                return float(self.max_elapsed)
        return waits

    def scaled(self, factor: float) -> RetryPolicy:
        """This policy with every duration multiplied by ``factor`` (attempts unchanged).

        The same schedule on another time scale: a test runs the defaults scaled
        by 1/100 against a 0.2-second outage to show what they do in a 20-second one.
        """
        return self.model_copy(
            update={
                name: getattr(self, name) * factor
                for name in ("initial_delay", "max_delay", "max_elapsed", "max_retry_after")
            }
        )

    def should_retry(self, error: BaseException | None, attempt: int, elapsed: float) -> bool:
        """Whether to try again after ``error`` at ``attempt``, ``elapsed`` seconds in.

        The decision the tenacity arguments below make, as a plain function. A
        `MissingDependencyError` is retried while ``elapsed < dependency_wait``;
        any other retryable error while both ``attempt < max_attempts`` and
        ``elapsed < max_elapsed``.
        """
        if not isinstance(error, DeliveryError) or not error.retryable:
            return False
        if isinstance(error, MissingDependencyError):
            return elapsed < self.dependency_wait
        return attempt < self.max_attempts and elapsed < self.max_elapsed

    def budget(self, error: BaseException | None) -> float:
        """Seconds since the first attempt after which ``error`` is no longer retried."""
        if isinstance(error, MissingDependencyError):
            return self.dependency_wait
        return self.max_elapsed

    def tenacity_kwargs(self, *, after_attempts: int = 0, elapsed: float = 0.0) -> dict[str, Any]:
        """Arguments for `tenacity.AsyncRetrying`/`Retrying` implementing this policy.

        ``after_attempts`` and ``elapsed`` continue a delivery that already made
        that many attempts over that many seconds: the runtime makes the first
        attempt itself, since most deliveries succeed at once.
        """
        return {
            "stop": _StopPolicy(self, after_attempts, elapsed),
            "wait": _WaitPolicy(self, after_attempts, elapsed),
            "retry": retry_if_exception(_is_retryable),
            "reraise": True,
        }

    def retrying(
        self, *, after_attempts: int = 0, elapsed: float = 0.0, **extra: Any
    ) -> AsyncRetrying:
        """An `AsyncRetrying` for this policy; ``extra`` adds hooks such as ``before_sleep``."""
        return AsyncRetrying(
            **self.tenacity_kwargs(after_attempts=after_attempts, elapsed=elapsed), **extra
        )


class RetryPolicyOverride(BaseModel):
    """The fields of a `RetryPolicy` that a flow or step changes; unset ones inherit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int | None = Field(
        default=None, ge=1, le=1000, description="Attempts in all, the first one included."
    )
    initial_delay: Duration | None = Field(
        default=None, description="Upper bound of the first backoff, before jitter."
    )
    max_delay: Duration | None = Field(
        default=None, description="Cap of one backoff, before jitter."
    )
    multiplier: float | None = Field(
        default=None, ge=1.0, description="Growth of the backoff bound."
    )
    jitter: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Share of each backoff drawn at random (0: none, 1: full jitter).",
    )
    max_elapsed: Duration | None = Field(
        default=None, description="Give up once this much time has passed since the first attempt."
    )
    respect_retry_after: bool | None = Field(
        default=None, description="Wait at least as long as the vendor's Retry-After asks."
    )
    max_retry_after: Duration | None = Field(
        default=None, description="Longest Retry-After honoured; longer ones are capped."
    )
    dependency_wait: Duration | None = Field(
        default=None,
        description=(
            "How long a step waiting for a record that does not exist yet is retried, "
            "whatever max_attempts says."
        ),
    )


_RANDOM = random.Random()  # noqa: S311 -- jitter, not cryptography


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, DeliveryError) and error.retryable


def _failure(retry_state: RetryCallState) -> BaseException | None:
    outcome = retry_state.outcome
    return outcome.exception() if outcome is not None else None


class _StopPolicy(stop_base):
    """Stops when `RetryPolicy.should_retry` says no, counting earlier attempts too."""

    def __init__(self, policy: RetryPolicy, after_attempts: int = 0, elapsed: float = 0.0) -> None:
        self.policy = policy
        self.after_attempts = after_attempts
        self.elapsed = elapsed

    def __call__(self, retry_state: RetryCallState) -> bool:
        attempt = retry_state.attempt_number + self.after_attempts
        spent = self.elapsed + (retry_state.seconds_since_start or 0.0)
        return not self.policy.should_retry(_failure(retry_state), attempt, spent)


class _WaitPolicy(wait_base):
    def __init__(self, policy: RetryPolicy, after_attempts: int = 0, elapsed: float = 0.0) -> None:
        self.policy = policy
        self.after_attempts = after_attempts
        self.elapsed = elapsed

    def __call__(self, retry_state: RetryCallState) -> float:
        error = _failure(retry_state)
        retry_after = error.retry_after if isinstance(error, DeliveryError) else None
        attempt = retry_state.attempt_number + self.after_attempts
        delay = self.policy.delay(attempt, retry_after)
        # Never sleep past the elapsed budget just to give up afterwards.
        spent = self.elapsed + (retry_state.seconds_since_start or 0.0)
        remaining = self.policy.budget(error) - spent
        return max(0.0, min(delay, remaining)) if retry_after is None else max(0.0, delay)
