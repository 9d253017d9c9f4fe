"""Clusters of real server processes sharing a private Redis and a PostgreSQL database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures_db import postgres_url
from tests.fixtures_redis import RedisServer, redis_server
from tests.fixtures_server import ServerProcess

__all__ = ["postgres_url", "redis_server"]  # re-exported so pytest finds the fixtures here

#: Settings every node of a test cluster gets (short lease: tests wait less for it).
CLUSTER_ENV = {"READERAI_TURN_LEASE_SECONDS": "2"}

StartNodes = Callable[..., list[ServerProcess]]


@pytest.fixture
def start_nodes(
    tmp_path: Path, redis_server: RedisServer, postgres_url: str
) -> Iterator[StartNodes]:
    """`start_nodes(n, **env)` starts n nodes on one Redis and one database, in parallel."""
    started: list[ServerProcess] = []

    def start(count: int, **env: str) -> list[ServerProcess]:
        nodes = []
        for _ in range(count):
            node = ServerProcess(
                tmp_path / f"node{len(started)}",
                env={
                    "READERAI_REDIS_URL": redis_server.url,
                    "READERAI_DATABASE_URL": postgres_url,
                    **CLUSTER_ENV,
                    **env,
                },
            )
            node.data_dir.mkdir()
            started.append(node)
            nodes.append(node)
            node.start(wait=False)
        for node in nodes:
            node.wait_ready()
        return nodes

    yield start
    for node in started:
        node.stop()
    for node in started:
        node.assert_never_blocked()
