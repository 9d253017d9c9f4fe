"""A PostgreSQL server of a test's own, for tests that stop and restart the database.

The shared server (`tests.fixtures_db`) must never go down under other tests, so an
outage is staged on a private one: `initdb` into a temporary directory, `pg_ctl` on
a free loopback port, trust authentication for the user `postgres`.

PostgreSQL refuses to run as root; as root the binaries run as the `postgres` user
(or `nobody`) through `runuser`, in a directory that user owns. Without the binaries,
or when they cannot run, the test is skipped with the reason shown, except in CI
(`CI=true`), where that is a failure.

Every method blocks (it runs `pg_ctl`): call them from sync fixtures, or from async
tests through `anyio.to_thread.run_sync`, never on the event loop.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures_server import free_port
from tests.needs import missing

#: Users a root test run may start PostgreSQL as, the first that exists.
UNPRIVILEGED_USERS = ("postgres", "nobody")
#: Seconds `pg_ctl` may wait for the server to start or stop.
PG_CTL_TIMEOUT = 30
SUPERUSER = "postgres"


class PostgresUnavailable(Exception):
    """The PostgreSQL binaries are missing or cannot run here."""


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary directory, on a free loopback port."""

    def __init__(self, root: Path, port: int, run_as: str | None) -> None:
        self.root = root
        self.port = port
        self._run_as = run_as
        self._data = root / "data"
        self._sockets = root / "sockets"
        self._log = root / "server.log"

    @classmethod
    def create(cls) -> PostgresServer:
        """Initialise a new cluster (not started); PostgresUnavailable if that cannot be done."""
        missing = [name for name in ("initdb", "pg_ctl") if shutil.which(name) is None]
        if missing:
            raise PostgresUnavailable(f"{' and '.join(missing)} not on PATH")
        run_as = _unprivileged_user() if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="readerai-pg-"))
        server = cls(root, free_port(), run_as)
        try:
            server._sockets.mkdir()
            if run_as is not None:
                for path in (root, server._sockets):
                    shutil.chown(path, user=run_as)
            server._run(
                "initdb", "-D", str(server._data), "-A", "trust", "-U", SUPERUSER,
                "--no-sync", "--no-locale", "-E", "UTF8",
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the server's maintenance database `postgres`."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self._sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("start", "-o", options, "-l", str(self._log))

    def stop(self) -> None:
        """Stop the server (`-m fast`: clients are disconnected) and wait until it is down."""
        self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server if it may be running, and remove its directory."""
        try:
            if (self._data / "postmaster.pid").exists():
                with contextlib.suppress(PostgresUnavailable):  # it stopped meanwhile
                    self._pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run("pg_ctl", action, "-D", str(self._data), "-w", "-t", str(PG_CTL_TIMEOUT), *args)

    def _run(self, program: str, *args: str) -> None:
        command = [program, *args]
        if self._run_as is not None:
            command = ["runuser", "-u", self._run_as, "--", *command]
        # stdin/out/err are not inherited by the server: `-l` sends its output to a file,
        # so nothing keeps these pipes open after pg_ctl exits.
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PG_CTL_TIMEOUT + 10, check=False
        )
        if done.returncode != 0:
            log = self._log.read_text()[-2000:] if self._log.is_file() else ""
            raise PostgresUnavailable(
                f"{' '.join(command)} exited with {done.returncode}: "
                f"{done.stderr.strip() or done.stdout.strip()} {log}".strip()
            )


def _unprivileged_user() -> str:
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root and runuser is not on PATH")
    for name in UNPRIVILEGED_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise PostgresUnavailable(f"running as root and none of {UNPRIVILEGED_USERS} exists")


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A started PostgreSQL server that only this test uses; removed afterwards."""
    try:
        server = PostgresServer.create()
    except PostgresUnavailable as exc:
        missing("a private PostgreSQL server", str(exc))
    try:
        try:
            server.start()
        except PostgresUnavailable as exc:
            missing("a private PostgreSQL server", str(exc))
        yield server
    finally:
        server.destroy()
