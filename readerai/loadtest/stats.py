"""Latency summaries: percentiles from every sample, never from a sketch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

#: The percentiles every latency is reported at.
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class Summary(BaseModel):
    """One latency's distribution, in seconds."""

    n: int
    mean: float
    p50: float
    p90: float
    p99: float
    p999: float
    max: float


def summarize(samples: Sequence[float]) -> Summary | None:
    """The distribution of `samples`; `None` when there are none."""
    if not samples:
        return None
    values = np.asarray(samples, dtype=np.float64)
    p50, p90, p99, p999 = (float(q) for q in np.percentile(values, PERCENTILES))
    return Summary(
        n=int(values.size),
        mean=float(values.mean()),
        p50=p50,
        p90=p90,
        p99=p99,
        p999=p999,
        max=float(values.max()),
    )
