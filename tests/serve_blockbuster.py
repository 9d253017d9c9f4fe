"""Run `readerai` with blockbuster active, so a server started by a test fails it
(through its log, which the fixture checks) when anything blocks its event loop."""

from __future__ import annotations

from blockbuster import blockbuster_ctx

from readerai.cli import main

if __name__ == "__main__":
    with blockbuster_ctx(["readerai"]):
        main()
