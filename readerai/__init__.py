"""ReaderAI: a self-hostable, real-time AI reading tutor server."""

__version__ = "0.1.0"
