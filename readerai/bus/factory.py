"""Pick the bus backend from its URL (as encode/broadcaster does)."""

from __future__ import annotations

from urllib.parse import urlsplit

from readerai.bus.base import Bus
from readerai.bus.memory import MemoryBus


def build_bus(url: str, *, prefix: str = "readerai") -> Bus:
    """`memory://` is the in-process bus, `redis://` / `rediss://` the shared one."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBus()
    if scheme in ("redis", "rediss", "unix"):
        from readerai.bus.redis import RedisBus

        return RedisBus(url, prefix=prefix)
    raise ValueError(
        f"unsupported READERAI_REDIS_URL scheme {scheme!r}; supported: memory://, redis://, rediss://"
    )
