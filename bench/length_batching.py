"""Reading a question's passages in one padded batch against batches by length, per backend.

    python -m bench.length_batching [--work /tmp/qa-reader-backends] [--questions 40] \\
        [--backends torch-fp32,onnx-fp32,onnx-int8]

The passages are those `bench.reader_backends` retrieved for SQuAD dev questions (kept in its
--work folder; run it first). Each question's windows are read with every batching in turn
(one padded batch; by length with 10%, 20%, 40% slack; one window a call), p50 milliseconds.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path

from bench.report import load_average
from qa.loading import configure_torch_threads
from qa.reader.extractive import ExtractiveReader
from qa.reader.loading import load_reader_tokenizer, load_span_model

SLACKS = {"one padded batch": float("inf"), "by length, 10%": 0.1, "by length, 20%": 0.2, "by length, 40%": 0.4}
SLACKS["one window a call"] = -1.0  # no other length fits: every window alone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "qa-reader-backends"))
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--backends", default="torch-fp32,onnx-fp32,onnx-int8")
    args = ap.parse_args()
    configure_torch_threads(2)
    cache = next((Path(args.work) / "retrieved").glob("*.pkl"), None)
    if cache is None:
        raise SystemExit(f"no retrieved passages in {args.work}/retrieved: run bench.reader_backends first")
    retrieved = pickle.loads(cache.read_bytes())
    work = [
        ("What is this passage about?", [h.chunk.text for h in r.hits])
        for r in itertools.islice(retrieved.values(), args.questions)
    ]
    tokenizer = load_reader_tokenizer()
    print(f"load average before: {load_average()}")
    for backend in args.backends.split(","):
        model = load_span_model(backend)
        readers = {name: ExtractiveReader(tokenizer, model, length_slack=slack) for name, slack in SLACKS.items()}
        readers["one padded batch"].read(*work[0])
        ms: dict[str, list[float]] = {name: [] for name in readers}
        for question, passages in work:
            for name, reader in readers.items():
                t = time.perf_counter()
                reader.read(question, passages)
                ms[name].append(1000 * (time.perf_counter() - t))
        p50 = {name: statistics.median(v) for name, v in ms.items()}
        base = p50["one padded batch"]
        print(backend, {name: f"{t:.0f} ms ({base / t:.2f}x)" for name, t in p50.items()})
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
