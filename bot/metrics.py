"""Prometheus metrics, one registry per app instance (not the library's global one), so two bots in one
process — or two tests — never share counters.

Counters the other parts increment (pass the `Metrics` object to them):

    metrics.updates_handled.inc()                      # the adapter, per Telegram update handled
    metrics.send_errors.labels(code="429").inc()       # the relay: "429", "403", "5xx", "network", ...
    metrics.refund_calls.labels(outcome="succeeded").inc()   # RefundWorker does this itself
    metrics.callbacks.labels(endpoint="refund", code="200").inc()  # the API does this itself

Or export counters someone already keeps, read at scrape time:

    metrics.count_updates_from(lambda: runner.handled)
    metrics.count_send_errors_from(lambda: relay.stats.errors)   # a mapping code -> count
Gauges read from the database at scrape time (`refresh`): cases by status, outbox backlog.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from dialogs.domain import CaseStatus
from dialogs.ports import UnitOfWorkFactory

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _SummedCounter(Collector):
    """A counter that is what was counted here with `inc()` plus every counter kept elsewhere and
    registered with `count_from` (e.g. the runner's `handled`), read at scrape time."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self._own = 0
        self._sources: list[Callable[[], int]] = []

    def inc(self, amount: int = 1) -> None:
        self._own += amount

    def count_from(self, source: Callable[[], int]) -> None:
        self._sources.append(source)

    def value(self) -> int:
        return self._own + sum(source() for source in self._sources)

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.value())


class _Label:
    def __init__(self, tally: Tally[str], value: str) -> None:
        self._tally, self._value = tally, value

    def inc(self, amount: int = 1) -> None:
        self._tally[self._value] += amount


class _SendErrors(Collector):
    """refundbot_send_errors_total{code}: `labels(code=...).inc()` here plus mappings kept elsewhere."""

    def __init__(self) -> None:
        self._own: Tally[str] = Tally()
        self._sources: list[Callable[[], Mapping[str, int]]] = []

    def labels(self, *, code: str) -> _Label:
        return _Label(self._own, str(code))

    def count_from(self, source: Callable[[], Mapping[str, int]]) -> None:
        self._sources.append(source)

    def values(self) -> Tally[str]:
        total = Tally(self._own)
        for source in self._sources:
            total.update({str(code): int(n) for code, n in source().items()})
        return total

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("refundbot_send_errors", "Telegram send errors by code (429, 403, 5xx, network)",
                                     labels=["code"])
        for code, count in sorted(self.values().items()):
            family.add_metric([code], count)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.updates_handled = _SummedCounter("refundbot_updates_handled", "Telegram updates handled")
        r.register(self.updates_handled)
        self.shared_limit_fallbacks = _SummedCounter(
            "refundbot_relay_shared_limit_fallbacks",
            "Times the relay lost the shared (Redis) send-rate limit and paced itself at its share")
        r.register(self.shared_limit_fallbacks)
        self.send_errors = _SendErrors()
        r.register(self.send_errors)
        self.refund_calls = Counter("refundbot_refund_gateway_calls",
                                    "Refund gateway calls by outcome (requested, succeeded, failed, unavailable)",
                                    ["outcome"], registry=r)
        self.callbacks = Counter("refundbot_platform_requests", "Signed platform API requests by endpoint and HTTP code",
                                 ["endpoint", "code"], registry=r)
        self.cases = Gauge("refundbot_cases", "Cases by status (read from the database at scrape time)",
                           ["status"], registry=r)
        self.outbox_backlog = Gauge("refundbot_outbox_backlog", "Outbox rows neither sent nor given up", registry=r)
        self.database_up = Gauge("refundbot_database_up", "1 when the last scrape could read the database",
                                 registry=r)

    def count_updates_from(self, source: Callable[[], int]) -> None:
        """Add a counter kept elsewhere (e.g. `lambda: runner.handled`) to refundbot_updates_handled_total."""
        self.updates_handled.count_from(source)

    def count_shared_limit_fallbacks_from(self, source: Callable[[], int]) -> None:
        """e.g. `lambda: relay.stats.shared_fallbacks`."""
        self.shared_limit_fallbacks.count_from(source)

    def count_send_errors_from(self, source: Callable[[], Mapping[str, int]]) -> None:
        """Add failed sends counted elsewhere (code -> count, e.g. `lambda: relay.stats.errors`)."""
        self.send_errors.count_from(source)

    async def refresh(self, uow_factory: UnitOfWorkFactory) -> bool:
        """Read the gauges from the database; False (and database_up 0) when it cannot be read."""
        try:
            async with uow_factory() as uow:
                counts = await uow.cases.count_by_status()
                backlog = await uow.outbox.backlog()
        except Exception:
            log.warning("metrics: cannot read the database", exc_info=True)
            self.database_up.set(0)
            return False
        for status in CaseStatus:
            self.cases.labels(status=status.value).set(counts.get(status, 0))
        self.outbox_backlog.set(backlog)
        self.database_up.set(1)
        return True

    def render(self) -> bytes:
        return generate_latest(self.registry)
