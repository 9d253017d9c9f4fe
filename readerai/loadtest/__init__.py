"""`readerai bench`: load tests of a ReaderAI server, reusable by its users.

The coordinator (`harness`) starts the servers it needs (`servers`), runs each
phase (`phase`) with client processes (`client`, one asyncio loop each, running a
`loads` mode over `sessions`), samples the server from /proc (`procstat`) and its
`/metrics` (`prometheus`), and reports (`results`, `comparisons`, `report`,
`plots`). Run `readerai bench --help`.
"""
