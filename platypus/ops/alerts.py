"""Failure alerts: post to Slack when a flow's failures in a window cross a threshold.

Every ``interval`` the `Alerter` counts, per flow, the failed-event entries whose
last failure is within each rule's window. A flow at or over its threshold gets
one message through the configured Slack connection (the ``slack`` adapter's
``post_message``), then nothing more for ``cooldown``, however many failures
follow. A post that fails is logged and tried again at the next check.

Alerts run once per deployment, not once per replica: each check first takes
(or renews) the **alerts lease** in the failed-event store (`ALERTS_LEASE`, see
`platypus.ops.lease`), which every process of a deployment shares (PostgreSQL
when there are several machines). Only the holder counts and posts; the others
stand by, and one of them takes over within the lease's ``ttl`` when the
holder stops (at once when it died on the same host).

The cooldown is kept in the store (`FailureStore.alert_sent`, written under
the lease): a restarted process, or the replica that takes the lease over,
does not alert again for a flow already alerted within ``cooldown``. It is
measured on the wall clock (``now``), which the processes of a deployment share.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import structlog

from platypus.adapter import Adapter, Request
from platypus.config import AlertRule, AlertSettings
from platypus.exceptions import PlatypusError
from platypus.ops.lease import DEFAULT_TTL, StoreLease
from platypus.ops.metrics import Metrics
from platypus.ops.store import FailureStore, LeaseLostError, failures

__all__ = ["ALERTS_LEASE", "Alert", "Alerter"]

ALERTS_LEASE = "platypus.alerts"
"""The lease of the process that checks the alert rules for the whole deployment."""

_log = structlog.get_logger("platypus.ops")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert posted (or tried): the flow, how many failures, the rule it crossed."""

    flow: str
    count: int
    rule: AlertRule
    text: str
    sent: bool


class Alerter:
    """Checks the rules against the failed-event store and posts alerts, rate-limited."""

    def __init__(
        self,
        store: FailureStore,
        slack: Adapter,
        settings: AlertSettings,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease: StoreLease | None = None,
    ) -> None:
        self.store = store
        self.slack = slack
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        """Monotonic seconds, for the schedule of checks; replaceable in tests."""
        self.now = now
        """The wall clock, for windows and the cooldown kept in the store."""
        self.lease = (
            lease
            if lease is not None
            else StoreLease(store, ALERTS_LEASE, ttl=DEFAULT_TTL, detail="failure alerts")
        )
        """Held while this process is the one that alerts (`check_once` takes it)."""

    def rule_for(self, flow: str) -> AlertRule | None:
        """The rule of ``flow``: the first naming it, else the first ``*`` rule."""
        named = [r for r in self.settings.rules if r.flow == flow]
        if named:
            return named[0]
        return next((r for r in self.settings.rules if r.flow == "*"), None)

    async def check_once(self) -> list[Alert]:
        """Count recent failures per flow and alert where a threshold is crossed.

        Only while this process holds the alerts lease; otherwise nothing (another
        process of the deployment alerts).
        """
        if not await asyncio.to_thread(self._hold_lease):
            return []
        windows = {r.window for r in self.settings.rules}
        counts: dict[float, dict[str, int]] = {}
        for window in windows:
            since = self.now() - timedelta(seconds=window)
            counts[window] = await asyncio.to_thread(self._count_since, since)
        flows = {flow for per_flow in counts.values() for flow in per_flow}
        last_sent = await asyncio.to_thread(self.store.last_alerts)
        alerts: list[Alert] = []
        for flow in sorted(flows):
            rule = self.rule_for(flow)
            if rule is None:
                continue
            count = counts[rule.window].get(flow, 0)
            if count < rule.threshold or self._cooling(last_sent.get(flow[:256])):
                continue
            alerts.append(await self._post(flow, count, rule))
        return alerts

    async def run_forever(self) -> None:
        """Check every ``interval`` seconds until cancelled (renewing the lease between).

        The lease is given up on the way out, so another process takes over at once.
        """
        # Renew well within the lease's ttl, even when checks are further apart.
        tick = min(self.settings.interval, self.lease.ttl / 3)
        due = self.clock()
        try:
            while True:
                try:
                    if self.clock() >= due:
                        due = self.clock() + self.settings.interval
                        await self.check_once()
                    else:
                        await asyncio.to_thread(self._hold_lease)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 -- one failed check must not stop alerting
                    _log.exception("checking failure alerts failed; trying again")
                await asyncio.sleep(tick)
        finally:
            try:
                await asyncio.to_thread(self.lease.release)
            except Exception:  # noqa: BLE001 -- it expires on its own
                _log.warning("could not give the alerts lease up; it expires on its own")

    def _hold_lease(self) -> bool:
        held_before = self.lease.current is not None
        held = self.lease.acquire() is not None
        if held and not held_before:
            _log.info("this process now checks the alert rules", holder=self.lease.holder)
        elif held_before and not held:
            _log.info("another process checks the alert rules now", holder=self.lease.holder)
        return held

    def _cooling(self, last: datetime | None) -> bool:
        return last is not None and self.now() - last < timedelta(seconds=self.settings.cooldown)

    def _count_since(self, since: datetime) -> dict[str, int]:
        query = (
            sa.select(failures.c.flow, sa.func.count())
            .where(failures.c.last_failure >= since)
            .group_by(failures.c.flow)
        )
        with self.store.engine.connect() as conn:
            return {str(flow): int(n) for flow, n in conn.execute(query)}

    async def _post(self, flow: str, count: int, rule: AlertRule) -> Alert:
        text = self._text(flow, count, rule)
        request = Request(
            action="post_message",
            payload={"channel": self.settings.channel, "text": text},
            flow=flow,
            step="alert",
        )
        try:
            await self.slack.call(request)
        except PlatypusError as exc:
            _log.warning("failure alert not posted", flow=flow, error=str(exc))
            return Alert(flow, count, rule, text, sent=False)
        try:
            await asyncio.to_thread(
                self.store.alert_sent, flow, self.now(), lease=self.lease.current
            )
        except LeaseLostError:
            # Posted, but another process holds the lease now: it may alert once more.
            _log.warning("the alerts lease was lost while posting; the cooldown is not kept")
        if self.metrics is not None:
            self.metrics.alerts.labels(flow or "(none)").inc()
        _log.info("failure alert posted", flow=flow, failures=count)
        return Alert(flow, count, rule, text, sent=True)

    def _text(self, flow: str, count: int, rule: AlertRule) -> str:
        name = flow or "(unreadable events)"
        text = (
            f":rotating_light: Platypus: {count} failed events in flow `{name}` "
            f"in the last {_duration(rule.window)} (threshold {rule.threshold})."
        )
        top = self._top_error(flow, self.now() - timedelta(seconds=rule.window))
        if top:
            text += f"\nMost common error: {top}"
        if self.settings.dashboard_url:
            base = self.settings.dashboard_url.rstrip("/")
            text += f"\n<{base}/failures?flow={flow}|Open the dashboard>"
        text += f"\nNo further alert for this flow for {_duration(self.settings.cooldown)}."
        return text

    def _top_error(self, flow: str, since: datetime) -> str:
        # Messages in the store are already scrubbed of personal data.
        query = (
            sa.select(failures.c.error_message, sa.func.count().label("n"))
            .where(failures.c.flow == flow, failures.c.last_failure >= since)
            .group_by(failures.c.fingerprint, failures.c.error_message)
            .order_by(sa.desc("n"))
            .limit(1)
        )
        with self.store.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return ""
        message = str(row[0])
        return message if len(message) <= 300 else message[:297] + "..."


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
