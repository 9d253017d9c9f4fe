"""Cross-node routing: the `Bus` interface and its backends, chosen by URL."""
