"""HTTP and WebSocket routes: thin, grouped by resource; logic lives in `session/`."""
