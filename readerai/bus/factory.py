"""Pick the bus backend from its URL (as encode/broadcaster does)."""

from __future__ import annotations

from urllib.parse import urlsplit

from readerai.bus.base import Bus
from readerai.bus.memory import MemoryBus


def build_bus(url: str) -> Bus:
    """`memory://` is the in-process bus; other schemes are refused with the list."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBus()
    raise ValueError(f"unsupported READERAI_BUS_URL scheme {scheme!r}; supported: memory://")
