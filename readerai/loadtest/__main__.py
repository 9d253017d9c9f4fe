"""`python -m readerai.loadtest ARGS` is `readerai bench ARGS`."""

from __future__ import annotations

import sys

from readerai.loadtest.harness import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
