"""ReaderAI settings: one pydantic-settings model, read from `READERAI_*` and `.env`.

Only the app factory and the CLI build a `Settings`; everything else receives the
values it needs. The README's settings table is generated from this class
(`python -m readerai.settings`), so every field carries its description.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineName = Literal["local", "openai", "extractive"]


class Settings(BaseSettings):
    """Every knob of a ReaderAI node, with its default."""

    model_config = SettingsConfigDict(
        env_prefix="READERAI_", env_file=".env", extra="ignore", frozen=True
    )

    # --- server ---
    host: str = Field("127.0.0.1", description="Address `readerai serve` binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port `readerai serve` listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level of log event written."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`json` lines, `console` for people, `auto` picks by terminal."
    )
    tracing: Literal["auto", "on", "off"] = Field(
        "auto",
        description="OpenTelemetry traces of turns over OTLP/HTTP: `auto` traces when "
        "`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, "
        "`on` always (default endpoint `http://localhost:4318`), `off` never.",
    )
    environment: Literal["development", "production"] = Field(
        "development", description="`production` refuses development defaults."
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        gt=0,
        description="On SIGTERM, how long replies in flight may run on before they are "
        "stopped and stored as they are.",
    )
    gc_freeze_seconds: float = Field(
        5.0,
        ge=0,
        description="How often what the cycle collector's young passes left alive (live "
        "sessions, mostly) is moved out of its sight with `gc.freeze()`, so its older "
        "passes stay short; 0: never (`readerai/collector.py`).",
    )
    gc_full_collection_seconds: float = Field(
        3600.0,
        ge=0,
        description="How often everything frozen is handed back for one full collector pass "
        "(logged as `gc.full_collection` with what it freed; about 1 s with 10,000 sessions, "
        "during which the node answers nobody); 0: never.",
    )

    # --- store ---
    database_url: str = Field(
        "sqlite+aiosqlite:///./data/readerai.db",
        description="SQLAlchemy async URL: `sqlite+aiosqlite:///PATH` or "
        "`postgresql+asyncpg://USER@HOST/DB`.",
    )
    database_connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for the database at start-up and per connect."
    )
    store_write_retry_seconds: float = Field(
        10.0,
        ge=0,
        description="While the database is unreachable, a write is retried with backoff for "
        "this long before it fails (`store_unavailable`).",
    )
    history_limit: int = Field(
        30, ge=1, le=500, description="Messages sent in `SESSION_RESTORED` and by default in REST."
    )
    progress_flush_seconds: float = Field(
        1.0, gt=0, description="`READING_PROGRESS` is coalesced and written at most this often."
    )

    # --- accounts ---
    auth_secret: SecretStr | None = Field(
        None,
        description="HS256 key that signs and checks tokens (at least 32 characters). Unset in "
        "development: a random one is kept in `READERAI_AUTH_SECRET_FILE`.",
    )
    auth_secret_file: Path = Field(
        Path("./data/auth-secret"),
        description="Where a development node keeps its generated token key (mode 0600).",
    )
    auth_algorithm: Literal["HS256", "RS256", "ES256"] = Field(
        "HS256", description="Token signature: HS256 (shared secret) or RS256/ES256 (key pair)."
    )
    auth_public_key: str | None = Field(
        None, description="PEM public key that checks RS256/ES256 tokens."
    )
    auth_private_key: SecretStr | None = Field(
        None, description="PEM private key that signs RS256/ES256 tokens (nodes that mint)."
    )
    token_ttl_seconds: float = Field(
        8 * 3600, gt=0, description="Lifetime of a token from a sign-in code or `readerai token`."
    )
    login_code_ttl_seconds: float = Field(
        7 * 86400, gt=0, description="How long a one-time sign-in code stays usable."
    )
    demo_accounts: bool = Field(
        True,
        description="In development, create a demo teacher, class and student at start-up and "
        "log a sign-in link for each.",
    )
    public_url: str = Field(
        "",
        description="Base URL people open (for printed links); default `http://HOST:PORT`.",
    )

    # --- scale-out ---
    redis_url: str = Field(
        "memory://",
        description="Bus shared by the nodes of a deployment: `redis://HOST:PORT/DB` for "
        "several workers or nodes, `memory://` for one process.",
    )
    redis_prefix: str = Field(
        "readerai", min_length=1, description="Prefix of every Redis key and channel."
    )
    workers: int = Field(
        1, ge=1, le=64, description="Worker processes `readerai serve` starts (needs Redis if > 1)."
    )
    turn_lease_seconds: float = Field(
        5.0,
        ge=2,
        description="A reply not checkpointed for this long belongs to a dead node and is "
        "shown as `interrupted`. Replies in flight are checkpointed every second.",
    )
    cluster_engine_concurrency: int = Field(
        0,
        ge=0,
        description="Engine calls running at once across all nodes (needs Redis); 0 = no "
        "cluster limit, only `READERAI_ENGINE_CONCURRENCY` per node.",
    )
    reply_stream_max_len: int = Field(
        4096, ge=64, description="Entries kept in the Redis stream of a reply in flight."
    )

    # --- engine ---
    engine: EngineName = Field(
        "local",
        description="`local` (SmolLM2 via llama-cpp-python), `openai` (any OpenAI-compatible "
        "server) or `extractive` (quotes the passage, no model).",
    )
    engine_concurrency: int = Field(
        2, ge=1, le=1024, description="Engine calls running at once on this node; others queue."
    )
    engine_queue_limit: int = Field(
        200, ge=0, description="Questions waiting for the engine before new ones are refused."
    )
    engine_timeout_seconds: float = Field(
        60.0, gt=0, description="Longest a whole reply may take before it fails."
    )
    max_reply_tokens: int = Field(160, ge=1, le=4096, description="Most tokens in one reply.")
    context_sentences: int = Field(
        40,
        ge=1,
        le=200,
        description="Most passage sentences put in the prompt of one question. A passage "
        "that fits goes in whole, which keeps the prompt's start the same from question "
        "to question, so the local engine reuses it (much faster first token).",
    )
    local_model_path: Path | None = Field(
        None, description="GGUF file for `local`; default: the bundled SmolLM2-135M-Instruct."
    )
    local_threads: int = Field(2, ge=1, le=64, description="CPU threads per local generation.")
    local_context_tokens: int = Field(2048, ge=256, description="Context window of `local`.")
    openai_base_url: str = Field(
        "http://127.0.0.1:8080/v1", description="Base URL of the OpenAI-compatible server."
    )
    openai_api_key: SecretStr = Field(
        SecretStr("not-needed"), description="API key sent to the OpenAI-compatible server."
    )
    openai_model: str = Field("gpt-4o-mini", description="Model name asked of that server.")
    openai_timeout_seconds: float = Field(
        30.0, gt=0, description="Connect/read timeout of one request to that server."
    )
    extractive_token_delay: float = Field(
        0.02, ge=0, description="`extractive` engine: seconds between streamed words."
    )

    # --- voice ---
    stt: Literal["whisper", "openai"] = Field(
        "whisper",
        description="Speech-to-text: `whisper` (bundled tiny.en, offline) or `openai` "
        "(an OpenAI-compatible `/audio/transcriptions` endpoint).",
    )
    tts: Literal["piper", "openai"] = Field(
        "piper",
        description="Text-to-speech: `piper` (bundled en_US-joe-medium, offline) or "
        "`openai` (an OpenAI-compatible `/audio/speech` endpoint).",
    )
    piper_voices: list[Path] = Field(
        default_factory=list,
        description="More Piper voices, as JSON list of `.onnx` files (each with its "
        "`.onnx.json` beside it); a voice is named by its file name without `.onnx`.",
    )
    vad: Literal["webrtc", "silero"] = Field(
        "silero", description="Voice activity detector that cuts questions out of audio."
    )
    vad_silence_ms: int = Field(
        500, ge=100, le=5000, description="Silence that ends a spoken question."
    )
    vad_max_utterance_ms: int = Field(
        15_000, ge=1000, le=120_000, description="Longest spoken question; longer is cut."
    )
    voice_concurrency: int = Field(
        2, ge=1, le=64, description="Speech-to-text and text-to-speech jobs at once, each."
    )
    read_aloud_concurrency: int = Field(
        1,
        ge=1,
        le=64,
        description="Read-aloud recognitions (a window of one reader's audio) at once on "
        "the node; more readers wait their turn (needs `stt=whisper`).",
    )
    read_aloud_stall_seconds: float = Field(
        5.0,
        ge=0,
        le=600,
        description="Read-aloud: seconds of the reading's audio with the reader's position "
        "unmoved before the tutor offers help, for a student with no class (a class's own "
        "`stallSeconds` applies otherwise).",
    )
    read_aloud_stall_help: Literal["off", "say_word", "ask"] = Field(
        "say_word",
        description="Read-aloud help for a stalled student with no class: `say_word` (the "
        "tutor says the next word), `ask` (a question about the passage so far) or `off`.",
    )
    audio_bytes_per_second: int = Field(
        64_000,
        ge=32_000,
        description="Most audio a client may send per second (2x real time by default).",
    )
    openai_stt_model: str = Field("whisper-1", description="Model for `stt=openai`.")
    openai_tts_model: str = Field("tts-1", description="Model for `tts=openai`.")

    # --- jobs ---
    job_poll_seconds: float = Field(
        1.0, gt=0, description="How often an idle node looks for queued jobs (any node's)."
    )
    job_heartbeat_seconds: float = Field(
        2.0, gt=0, description="How often a node running a job records its progress and lease."
    )
    job_stale_seconds: float = Field(
        15.0,
        gt=0,
        description="A running job not heartbeated for this long lost its node (a crash or "
        "restart) and is resumed by any node; more than `job_heartbeat_seconds`.",
    )
    job_max_attempts: int = Field(
        3, ge=1, description="Times a job is started before a lost one is marked `failed`."
    )

    @model_validator(mode="after")
    def _job_lease_outlasts_heartbeat(self) -> Settings:
        if self.job_stale_seconds <= self.job_heartbeat_seconds:
            raise ValueError(
                "READERAI_JOB_STALE_SECONDS must exceed READERAI_JOB_HEARTBEAT_SECONDS"
            )
        return self

    # --- connections ---
    max_frame_bytes: int = Field(
        65536, ge=1024, description="Largest WebSocket frame; larger ones close with 1009."
    )
    max_question_chars: int = Field(
        2000, ge=1, description="Longest `questionText`; longer gets `ERROR text_too_long`."
    )
    outbound_queue_size: int = Field(
        512, ge=8, description="Events waiting to be written to one client."
    )
    send_timeout_seconds: float = Field(
        10.0, gt=0, description="A client that accepts no data for this long is closed (4008)."
    )
    rate_limit_per_second: float = Field(
        30.0, gt=0, description="Sustained client messages per second per connection."
    )
    rate_limit_burst: int = Field(60, ge=1, description="Messages a client may send in a burst.")
    rate_limit_strikes: int = Field(
        20, ge=1, description="Messages over the limit before the connection is closed (1008)."
    )
    ws_ping_interval: float = Field(
        30.0,
        gt=0,
        description="Seconds between WebSocket pings to each client (each costs a write and "
        "a read: at 10,000 clients, 20 s is 5 % of a core idle, 30 s 3 %; keep it under "
        "your proxies' idle timeout).",
    )
    ws_ping_timeout: float = Field(
        20.0,
        gt=0,
        description="A client that does not answer a ping in this time is closed (1011).",
    )
    handshake_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A connection must send a complete HTTP request head (a WebSocket "
        "upgrade included) within this time of opening, or of its previous response; "
        "else it gets 408 and is closed.",
    )
    ws_send_buffer_bytes: int = Field(
        65536,
        ge=0,
        description="Bytes waiting to be sent to one client in the kernel (`SO_SNDBUF`, "
        "which Linux doubles) and again in the server, before sends wait and "
        "`READERAI_SEND_TIMEOUT_SECONDS` runs; 0 leaves the kernel's autotuning (up to 4 MiB).",
    )
    idle_timeout_seconds: float = Field(
        600.0, gt=0, description="A connection that sends nothing for this long is closed."
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Browser origins allowed to open WebSockets; empty allows same host only.",
    )

    @model_validator(mode="after")
    def _refuse_dev_defaults_in_production(self) -> Settings:
        if self.environment == "production" and self.database_url.startswith("sqlite"):
            # A production node on a local SQLite file loses history with the node.
            raise ValueError("production needs a PostgreSQL READERAI_DATABASE_URL")
        if self.auth_algorithm == "HS256":
            secret = self.auth_secret.get_secret_value() if self.auth_secret else None
            if secret is not None and len(secret) < 32:
                raise ValueError("READERAI_AUTH_SECRET must be at least 32 characters")
            if self.environment == "production" and secret is None:
                raise ValueError("production needs READERAI_AUTH_SECRET (or a key pair)")
        elif self.auth_public_key is None:
            raise ValueError(f"{self.auth_algorithm} needs READERAI_AUTH_PUBLIC_KEY")
        return self


#: How `readerai serve --workers N` hands its resolved settings to the workers.
WORKER_SETTINGS_ENV = "READERAI_WORKER_SETTINGS_JSON"


def worker_settings_json(settings: Settings) -> str:
    """`settings` as JSON for worker processes (secrets included: it stays in env)."""
    data = settings.model_dump(mode="json")
    for name, value in settings:
        if isinstance(value, SecretStr):
            data[name] = value.get_secret_value()
    return json.dumps(data)


def settings_from_worker_json(text: str) -> Settings:
    return Settings.model_validate(json.loads(text))


def settings_table() -> str:
    """The README's settings table, one row per field."""
    rows = ["| variable | default | description |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        shown = "" if default is None else str(default)
        rows.append(f"| `READERAI_{name.upper()}` | `{shown}` | {field.description} |")
    return "\n".join(rows)


def _write_readme_table(readme: Path) -> None:
    """Replace the README's settings table (its last section) with a fresh one."""
    text = readme.read_text()
    start = text.index("| variable | default | description |")
    readme.write_text(text[:start] + settings_table() + "\n")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--readme"]:
        _write_readme_table(Path(sys.argv[2]))
    else:
        print(settings_table())  # noqa: T201
