"""`POST /ask` latency on a warm server over the bundled articles, beside the reader's forward
pass alone on the same passages (so the cost of everything else shows as a ratio).

    python -m bench.ask_latency [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.report import table, write_section
from qa.config import Settings
from qa.eval.gold import load_gold
from qa.models import configure_torch_threads
from qa.pipeline import QAPipeline
from qa.serve.process import ServerProcess

GOLD = Path(__file__).resolve().parent.parent / "seeds" / "gold" / "news_gold.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    questions = [q.question for q in load_gold(GOLD).questions]
    with (
        tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp,
        ServerProcess(tmp, Path(tmp) / "server.log", timeout_s=600) as server,
    ):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for q in questions[:5]:
                client.post("/ask", json={"question": q})  # warm-up
            http_ms, server_ms = [], []
            for _ in range(args.rounds):
                for q in questions:
                    t = time.perf_counter()
                    r = client.post("/ask", json={"question": q})
                    http_ms.append(1000 * (time.perf_counter() - t))
                    r.raise_for_status()
                    server_ms.append(r.json()["timing_ms"]["total"])
    # The reader's forward pass alone, in this process, on the passages /ask reads.
    configure_torch_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = QAPipeline(Settings(index_dir=tmp))
        pipeline.build([pipeline.settings.seeds_dir])
        pipeline.warm_up()
        passages = {q: [h.chunk.text for h in pipeline.search(q, pipeline.settings.read_k)] for q in questions}
        reader_ms = []
        for _ in range(args.rounds):
            for q in questions:
                t = time.perf_counter()
                pipeline.reader.read(q, passages[q])
                reader_ms.append(1000 * (time.perf_counter() - t))
    result = {
        "requests": len(http_ms),
        "http_p50_ms": round(float(np.percentile(http_ms, 50)), 1),
        "http_p95_ms": round(float(np.percentile(http_ms, 95)), 1),
        "server_total_p50_ms": round(float(np.percentile(server_ms, 50)), 1),
        "reader_alone_p50_ms": round(float(np.percentile(reader_ms, 50)), 1),
    }
    result["ratio_http_to_reader"] = round(result["http_p50_ms"] / result["reader_alone_p50_ms"], 2)
    print(json.dumps(result))
    if not args.no_write:
        body = (
            f"{len(questions)} news gold questions x {args.rounds} rounds, one client, warm server, "
            f"read_k={pipeline.settings.read_k} passages.\n\n"
            + table(
                [
                    ("POST /ask over HTTP", result["http_p50_ms"], result["http_p95_ms"]),
                    ("pipeline total inside the server", result["server_total_p50_ms"], "-"),
                    ("reader forward pass alone (same passages)", result["reader_alone_p50_ms"], "-"),
                ],
                ("what", "p50 ms", "p95 ms"),
            )
            + f"\n\nPOST /ask takes {result['ratio_http_to_reader']:.2f}x the reader's own time at p50: everything "
            f"around the reader (retrieval, HTTP, JSON) adds {result['ratio_http_to_reader'] - 1:.0%}."
        )
        write_section("ask_latency", "POST /ask latency (bundled articles)", body)


if __name__ == "__main__":
    main()
