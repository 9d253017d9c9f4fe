"""What grounding costs a question: choosing the context, scoring it, citing the reply.

Every question runs `select_context` (when the passage is longer than the prompt's
limit), the extractive engine's `score_sentences` over the context, and `cite` over
the reply. This times each, per call, on a bundled passage and the questions of the
question benchmark's kind.

    python bench/grounding.py                  # the-ant-and-the-grasshopper, 3,000 calls
    python bench/grounding.py --calls 10000 --copies 4   # a passage 4 times as long
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable

from ack_latency import machine

from readerai.engines.base import EngineRequest
from readerai.engines.extractive import extractive_answer
from readerai.grounding import cite, score_sentences, select_context, split_sentences
from readerai.samples import load_samples

QUESTIONS = [
    "Why did the grasshopper not store food for winter?",
    "What was the ant carrying?",
    "What happened when the snow came?",
    "Who worked all summer?",
]


def per_call_us(calls: int, work: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for index in range(calls):
        work(index)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passage", default="the-ant-and-the-grasshopper")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--copies", type=int, default=1, help="repeat the passage's text")
    parser.add_argument("--limit", type=int, default=40, help="READERAI_CONTEXT_SENTENCES")
    args = parser.parse_args()
    sample = next(s for s in load_samples() if s.id == args.passage)
    sentences = split_sentences("\n\n".join([sample.text] * args.copies))
    context = select_context(sentences, QUESTIONS[0], args.limit)
    answers = [extractive_answer(EngineRequest(question=q, context=context)) for q in QUESTIONS]

    def question(i: int) -> str:
        return QUESTIONS[i % len(QUESTIONS)]

    print("command: python bench/grounding.py", shlex.join(sys.argv[1:]))
    print("machine:", machine())
    print(f"passage: {args.passage} x{args.copies}, {len(sentences)} sentences")
    figures = {
        "select_context": per_call_us(
            args.calls, lambda i: select_context(sentences, question(i), args.limit)
        ),
        "score_sentences (context)": per_call_us(
            args.calls, lambda i: score_sentences([s for _, s in context], question(i))
        ),
        "cite (reply)": per_call_us(args.calls, lambda i: cite(answers[i % len(answers)], context)),
    }
    for name, micros in figures.items():
        print(f"{name:<28} {micros:8.1f} µs per call")


if __name__ == "__main__":
    main()
