"""Reading a server's `/metrics` the way Prometheus does (its text format, parsed)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

#: One sample: its name and labels, as `(name, (("label", "value"), ...))`.
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def parse(text: str) -> dict[SampleKey, float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(base_url: str) -> dict[SampleKey, float]:
    """One scrape on a new connection (so several scrapes may reach different workers)."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/metrics", timeout=10)
    response.raise_for_status()
    return parse(response.text)


def value(samples: dict[SampleKey, float], name: str, **labels: str) -> float:
    """The sample `name{labels}`; KeyError if the server does not export it."""
    return samples[(name, tuple(sorted(labels.items())))]
