"""Event-loop lag and gauges of a ReaderAI server, from its `/metrics`.

`readerai_event_loop_lag_seconds` is a cumulative histogram since the server
started; the lag during a run is the difference of two scrapes, and a percentile is
interpolated within its bucket the way Prometheus' `histogram_quantile` does.
Gauges (tasks, connections, live sessions) are read as they are at the scrape.
"""

from __future__ import annotations

import math

import httpx
from pydantic import BaseModel

METRIC = "readerai_event_loop_lag_seconds"

#: Cumulative count per upper bound (`le`), +Inf included.
Buckets = dict[float, float]


class LagSummary(BaseModel):
    """Loop lag over a window, in seconds; infinite past the last finite bucket."""

    probes: int
    p50: float
    p99: float
    max_bucket: float


async def scrape_lag(http: httpx.AsyncClient, base_url: str) -> Buckets | None:
    """The lag histogram now; `None` if the server has no such metric."""
    text = await scrape(http, base_url)
    return parse_buckets(text) if text is not None else None


async def scrape(http: httpx.AsyncClient, base_url: str) -> str | None:
    """The `/metrics` page now; `None` if the server does not serve one."""
    try:
        response = await http.get(f"{base_url}/metrics", timeout=10.0)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return response.text


def parse_gauges(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """The values of the gauges `names` found in `text`; a gauge with several series
    (one per worker process, in multiprocess mode) is their sum."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        head, _, value = line.rpartition(" ")
        name = head.partition("{")[0]
        if name in names:
            values[name] = values.get(name, 0.0) + float(value)
    return values


def parse_buckets(text: str) -> Buckets | None:
    """The `_bucket` series of the lag histogram in Prometheus text format."""
    prefix = f'{METRIC}_bucket{{le="'
    buckets: Buckets = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            bound, _, value = line[len(prefix) :].partition('"}')
            buckets[float(bound)] = float(value.split()[0])
    return buckets or None


def lag_between(before: Buckets, after: Buckets) -> LagSummary | None:
    """The lag observed between two scrapes; `None` if there was no probe."""
    delta = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = delta.get(math.inf, 0.0)
    if total <= 0:
        return None
    return LagSummary(
        probes=int(total),
        p50=quantile(delta, 0.5),
        p99=quantile(delta, 0.99),
        # The smallest bound holding every probe: the worst lag is at most this.
        max_bucket=min(le for le, count in delta.items() if count >= total),
    )


def quantile(buckets: Buckets, q: float) -> float:
    """Interpolated `q` quantile of cumulative `buckets` (sorted by bound)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound if len(bounds) == 1 else math.inf
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return math.inf
