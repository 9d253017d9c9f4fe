"""Build the configured `Engine` from settings (``READERAI_ENGINE``)."""

from __future__ import annotations

from readerai.engines.base import Engine
from readerai.engines.extractive import ExtractiveEngine
from readerai.engines.local import LocalEngine
from readerai.engines.openai_compat import OpenAIEngine
from readerai.settings import Settings


def build_engine(settings: Settings) -> Engine:
    """The engine named by ``settings.engine``, not yet started.

    Building touches neither the disk nor the network (``local`` imports
    llama-cpp-python only when started), so it is safe on the event loop.
    """
    if settings.engine == "local":
        return LocalEngine(
            settings.local_model_path,
            threads=settings.local_threads,
            context_tokens=settings.local_context_tokens,
            # One model instance per engine call allowed at once: more would only queue.
            parallel=settings.engine_concurrency,
        )
    if settings.engine == "openai":
        return OpenAIEngine(
            settings.openai_base_url,
            settings.openai_api_key.get_secret_value(),
            settings.openai_model,
            settings.openai_timeout_seconds,
        )
    if settings.engine == "extractive":
        return ExtractiveEngine(settings.extractive_token_delay)
    raise ValueError(f"unknown engine {settings.engine!r}")
