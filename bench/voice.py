"""Voice latency on the offline models: first reply audio, barge-in stop, loop lag.

Starts `readerai serve` (local SmolLM2, Whisper tiny.en, Piper, Silero VAD) on a
free port, speaks Piper-synthesised questions to it in real time over WebSockets,
and reports:

- first audio: end of the student's speech -> first reply audio frame received
  (includes the VAD's end-of-speech silence, READERAI_VAD_SILENCE_MS);
- barge-in stop: the server's speech-start signal (TRANSCRIPT final:false, sent when
  the triggering frame is detected) -> last frame of the old turn received;
- under load: event-loop lag p99 (server histogram) and a text session's
  acknowledgement p99 while N voice sessions talk at once.

    python bench/voice.py --questions 20 --bargeins 10 --load-sessions 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from ack_latency import AUTH, PROTOCOLS, machine, start_server
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.speech_samples import chunks, silence, spoken

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Why did the lion let the little mouse go?",
    "What did the mouse promise the lion?",
    "How did the mouse help the lion?",
    "Who caught the lion in a net?",
    "What did the lion think of the mouse?",
]
AUDIO_ON = {"audio": {"inputFormat": "pcm16", "inputSampleRate": 16000, "output": True}}


async def open_session(url: str) -> ClientConnection:
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        created = await http.post("/api/sessions", json={"passageId": "the-lion-and-the-mouse"})
    ws = await connect(
        url.replace("http", "ws", 1) + f"/ws/{created.json()['id']}",
        max_size=None,
        subprotocols=PROTOCOLS,
    )
    await ws.recv()
    await ws.send(json.dumps({"type": "SESSION_UPDATE", "payload": AUDIO_ON}))
    return ws


async def speak(ws: ClientConnection, pcm: bytes) -> float:
    """Send `pcm` in real time; return when its last frame was sent."""
    start = time.perf_counter()
    for i, chunk in enumerate(chunks(pcm)):
        await ws.send(chunk)
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.04 - time.perf_counter()))
    return time.perf_counter()


async def keep_quiet(ws: ClientConnection, stop: asyncio.Event) -> None:
    """A live microphone keeps sending (silence) while the student listens."""
    frame = silence(40)
    while not stop.is_set():
        await ws.send(frame)
        await asyncio.sleep(0.04)


async def first_audio_latency(
    url: str, speech: list[bytes], questions: int, stages: dict[str, list[float]]
) -> list[float]:
    ws = await open_session(url)
    latencies = []
    try:
        for i in range(questions):
            ended = await speak(ws, speech[i % len(speech)])
            stop = asyncio.Event()
            quiet = asyncio.create_task(keep_quiet(ws, stop))
            first: float | None = None
            marks: dict[str, float] = {}
            while True:
                frame = await asyncio.wait_for(ws.recv(), 60)
                now = time.perf_counter()
                if isinstance(frame, bytes):
                    first = first or now
                    continue
                event = json.loads(frame)
                kind = event["type"]
                if kind == "TRANSCRIPT" and event["payload"]["final"]:
                    kind = "TRANSCRIPT final"
                marks.setdefault(kind, now - ended)
                if kind == "RESPONSE_DONE":
                    break
            stop.set()
            await quiet
            if first is not None:
                latencies.append(first - ended)
                for kind in ("TRANSCRIPT final", "INTERRUPTION_ACKNOWLEDGED", "RESPONSE_DELTA"):
                    if kind in marks:
                        stages.setdefault(kind, []).append(marks[kind])
    finally:
        await ws.close()
    return latencies


async def bargein_stop(url: str, interruption: bytes, trials: int) -> list[float]:
    ws = await open_session(url)
    stops = []
    try:
        for _ in range(trials):
            ask = {"questionText": "Tell me the whole story of the lion and the mouse."}
            await ws.send(json.dumps({"type": "STUDENT_INTERRUPTION", "payload": ask}))
            old_turn = None
            while True:  # wait for the reply's audio to flow
                frame = await asyncio.wait_for(ws.recv(), 60)
                if isinstance(frame, bytes):
                    break
                event = json.loads(frame)
                if event["type"] == "INTERRUPTION_ACKNOWLEDGED":
                    old_turn = event["payload"]["turnId"]
            talking = asyncio.create_task(speak(ws, interruption))
            triggered = last_old = None
            while True:
                frame = await asyncio.wait_for(ws.recv(), 60)
                now = time.perf_counter()
                if isinstance(frame, bytes):
                    if frame[4:20].hex() == old_turn:
                        last_old = now
                    continue
                event = json.loads(frame)
                payload = event["payload"]
                if event["type"] == "TRANSCRIPT" and not payload["final"]:
                    triggered = triggered or now
                elif payload.get("turnId") == old_turn and event["type"] == "RESPONSE_DELTA":
                    last_old = now
                elif event["type"] == "RESPONSE_DONE" and payload["turnId"] != old_turn:
                    break
            await talking
            if triggered is not None:
                stops.append(max(0.0, (last_old or triggered) - triggered))
    finally:
        await ws.close()
    return stops


async def load(url: str, speech: list[bytes], sessions: int, seconds: float) -> list[float]:
    """`sessions` voice students talk for `seconds` while a text student asks."""
    deadline = time.perf_counter() + seconds

    async def voice_student(index: int) -> None:
        ws = await open_session(url)
        try:
            i = index
            while time.perf_counter() < deadline:
                await speak(ws, speech[i % len(speech)] + silence(2000))
                i += 1
        finally:
            await ws.close()

    async def text_student() -> list[float]:
        acks = []
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            created = await http.post("/api/sessions", json={"passageId": "the-lion-and-the-mouse"})
        ws_url = url.replace("http", "ws", 1) + f"/ws/{created.json()['id']}"
        async with connect(ws_url, max_size=None, subprotocols=PROTOCOLS) as ws:
            await ws.recv()
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                question = {"questionText": "Who helped the lion?"}
                await ws.send(json.dumps({"type": "STUDENT_INTERRUPTION", "payload": question}))
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"] == "INTERRUPTION_ACKNOWLEDGED":
                        acks.append(time.perf_counter() - sent)
                        break
                await asyncio.sleep(0.5)
        return acks

    results = await asyncio.gather(*(voice_student(i) for i in range(sessions)), text_student())
    acks: list[float] = results[-1]
    return acks


def loop_lag_p99(metrics_text: str) -> str:
    """p99 of the server's loop-lag histogram, as the bucket bound it falls under."""
    buckets = [
        (float(m.group(1)), float(m.group(2)))
        for m in re.finditer(
            r'readerai_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', metrics_text
        )
    ]
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= 0.99 * total:
            return f"<= {bound * 1000:g} ms (n={total:.0f})"
    return "n/a"


def summary(values: list[float], *quantiles: int) -> str:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return "no samples"
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    parts = [f"p{p} {q[p - 1]:.0f} ms" for p in quantiles]
    return "  ".join([*parts, f"max {ms[-1]:.0f} ms", f"(n={len(ms)})"])


async def main_async(args: argparse.Namespace, url: str) -> None:
    speech = [await asyncio.to_thread(spoken, q, 300, 0) for q in QUESTIONS]
    interruption = await asyncio.to_thread(spoken, "Wait, who caught the lion?", 0, 800)
    stages: dict[str, list[float]] = {}
    latencies = await first_audio_latency(url, speech, args.questions, stages)
    print("first reply audio after end of speech:", summary(latencies, 50, 95))
    for kind, values in stages.items():
        print(f"  {kind} after end of speech:", summary(values, 50, 95))
    stops = await bargein_stop(url, interruption, args.bargeins)
    print("barge-in stop (speech detected -> last old frame):", summary(stops, 50, 99))
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        before = (await http.get("/metrics")).text
    acks = await load(url, speech, args.load_sessions, args.load_seconds)
    async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        after = (await http.get("/metrics")).text
    print(f"with {args.load_sessions} voice sessions talking for {args.load_seconds:g} s:")
    print("  text acknowledgement:", summary(acks, 50, 99))
    print(
        "  event-loop lag p99 (whole run):",
        loop_lag_p99(after),
        "| before load:",
        loop_lag_p99(before),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--bargeins", type=int, default=10)
    parser.add_argument("--load-sessions", type=int, default=4)
    parser.add_argument("--load-seconds", type=float, default=30)
    parser.add_argument("--engine", default="local", choices=["local", "extractive"])
    parser.add_argument("--url", help="use a running server instead of starting one")
    args = parser.parse_args()
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print("machine:", machine())
    with tempfile.TemporaryDirectory() as data:
        proc, url = (
            (None, args.url)
            if args.url
            else start_server(args.engine, 0.02, Path(data), READERAI_MAX_REPLY_TOKENS="80")
        )
        try:
            asyncio.run(main_async(args, url))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
