"""Reading throughput with concurrent questions: forward passes one question at a time (what
one model call at a time gives) against micro-batched passes (qa/reader/batching.py), the
same questions and passages, rounds alternated so that load from other processes falls on
both alike.

    python -m bench.reader_batching --squad-dev ../shared/data/squad/dev-v1.1.json \\
        [--questions 48] [--clients 8] [--rounds 2] [--backend onnx-int8]

Uses the index of the 48 SQuAD dev articles that `bench.reader_backends` keeps in --work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.reader_backends import load_average
from bench.report import table, write_section
from qa.config import Settings
from qa.eval.gold import load_gold
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline
from qa.reader.backends import SpanModel
from qa.reader.batching import MicroBatcher
from qa.reader.extractive import ExtractiveReader
from qa.reader.loading import load_reader_tokenizer, load_span_model


class OneAtATime:
    """A span model behind a lock: concurrent callers run their passes one after another."""

    def __init__(self, model: SpanModel) -> None:
        self.model, self.name, self._lock = model, model.name, threading.Lock()
        self.passes = 0

    def __call__(self, *arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            self.passes += 1
            return self.model(*arrays)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad-dev", required=True)
    ap.add_argument("--questions", type=int, default=48)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backend", default="onnx-int8")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "qa-reader-backends"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    configure_torch_threads(settings.threads)
    gold = load_gold(args.squad_dev)
    pipeline = QAPipeline(Settings(index_dir=Path(args.work) / "squad-dev-index"))
    if pipeline.store.exists():
        pipeline.load()
    else:
        pipeline.build_from_articles(gold.articles, progress=True)
    step = max(1, len(gold.questions) // args.questions)
    work = [
        (q.question, [h.chunk.text for h in pipeline.search(q.question, settings.read_k)])
        for q in gold.questions[::step][: args.questions]
    ]
    model = load_span_model(args.backend, None, settings.threads)
    tokenizer = load_reader_tokenizer()
    modes: dict[str, OneAtATime | MicroBatcher] = {
        "one pass per question": OneAtATime(model),
        "micro-batched": MicroBatcher(model),
    }
    readers = {name: ExtractiveReader(tokenizer, m) for name, m in modes.items()}
    for r in readers.values():
        r.read(*work[0])
    rates: dict[str, list[float]] = {name: [] for name in modes}
    load_before = load_average()
    for _ in range(args.rounds):
        for name, reader in readers.items():
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(lambda w, r=reader: r.read(*w, n_best=10), work))
            rates[name].append(len(work) / (time.perf_counter() - t0))
    load_after = load_average()
    base = statistics.median(rates["one pass per question"])
    result = {
        name: {
            "questions_per_s": round(statistics.median(r), 2),
            "ratio": round(statistics.median(r) / base, 2),
            "forward_passes": modes[name].passes,
        }
        for name, r in rates.items()
    }
    print(
        json.dumps(
            {
                "backend": args.backend,
                "clients": args.clients,
                "load_before": load_before,
                "load_after": load_after,
                **result,
            }
        )
    )
    if not args.no_write:
        body = (
            f"{len(work)} SQuAD dev questions x {args.rounds} rounds, {args.clients} threads reading at once, "
            f"{settings.read_k} passages each, backend {args.backend}, {settings.threads} threads. "
            f"Load average before: {load_before}; after: {load_after}.\n\n"
            + table(
                [(name, r["questions_per_s"], f"{r['ratio']:.2f}x", r["forward_passes"]) for name, r in result.items()],
                ("reading", "questions/s", "ratio", "forward passes (warm-up and all rounds)"),
            )
        )
        write_section("reader_batching", "Reading concurrent questions: micro-batching", body)


if __name__ == "__main__":
    main()
