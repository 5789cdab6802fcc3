"""`POST /ask` latency on a warm server over the bundled articles, reader backends side by side,
each beside its reader's forward pass alone on the same passages (so the cost of everything
else shows as a ratio).

    python -m bench.ask_latency [--rounds 3] [--backends torch-fp32,onnx-int8+torch,onnx-int8]

One server per backend (QA_READER_BACKEND; after a "+", the query encoder, QA_QUERY_ENCODER,
else auto's), all over one index; every question is asked of each server in turn, the order
rotating, one request at a time, so that load from other processes falls on all alike. The
first backend is the reference for the speed ratios. An onnx-* backend needs its file
(`qa export-reader`, `qa export-embedder`; `make install` runs them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.report import load_average, percentile, table, write_section
from bench.server_process import ServerProcess
from qa.config import Settings
from qa.eval.gold import load_gold
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline

GOLD = Path(__file__).resolve().parent.parent / "seeds" / "gold" / "news_gold.jsonl"


def reader_of(backend: str) -> str:
    return backend.partition("+")[0]


def server_env(backend: str) -> dict[str, str]:
    reader, _, query_encoder = backend.partition("+")
    return {"QA_READER_BACKEND": reader} | ({"QA_QUERY_ENCODER": query_encoder} if query_encoder else {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--backends", default="torch-fp32,onnx-int8", help="READER[+QUERY_ENCODER],...; the first is the reference"
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    backends = args.backends.split(",")
    questions = [q.question for q in load_gold(GOLD).questions]
    http_ms: dict[str, list[float]] = {b: [] for b in backends}
    server_ms: dict[str, list[float]] = {b: [] for b in backends}
    reader_ms: dict[str, list[float]] = {b: [] for b in backends}
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp, ExitStack() as stack:
        # The first server builds the index from the bundled articles; the others open it.
        servers = {
            b: stack.enter_context(ServerProcess(tmp, Path(tmp) / f"server-{b}.log", timeout_s=600, env=server_env(b)))
            for b in backends
        }
        clients = {b: stack.enter_context(httpx.Client(base_url=s.url, timeout=60)) for b, s in servers.items()}
        embedded_by = {b: client.get("/healthz").json()["query_encoder"] for b, client in clients.items()}
        for client in clients.values():
            for q in questions[:5]:
                client.post("/ask", json={"question": q}).raise_for_status()  # warm-up
        load_before = load_average()
        for i, q in enumerate(questions * args.rounds):
            for b in backends[i % len(backends) :] + backends[: i % len(backends)]:
                t = time.perf_counter()
                r = clients[b].post("/ask", json={"question": q})
                http_ms[b].append(1000 * (time.perf_counter() - t))
                r.raise_for_status()
                server_ms[b].append(r.json()["timing_ms"]["total"])
        for s in servers.values():
            s.stop()
        # Each reader's forward pass alone, in this process, on the passages /ask reads.
        configure_torch_threads(2)
        pipelines = {b: QAPipeline(Settings(index_dir=tmp, reader_backend=reader_of(b))) for b in backends}
        first = pipelines[backends[0]]
        first.load()
        passages = {q: [h.chunk.text for h in first.search(q, first.settings.read_k)] for q in questions}
        for pipeline in pipelines.values():
            pipeline.reader.read(questions[0], passages[questions[0]])
        for i, q in enumerate(questions * args.rounds):
            for b in backends[i % len(backends) :] + backends[: i % len(backends)]:
                t = time.perf_counter()
                pipelines[b].reader.read(q, passages[q])
                reader_ms[b].append(1000 * (time.perf_counter() - t))
        load_after = load_average()
    base = backends[0]
    result = {
        b: {
            "requests": len(http_ms[b]),
            "query_encoder": embedded_by[b],
            "http_p50_ms": percentile(http_ms[b], 50),
            "http_p95_ms": percentile(http_ms[b], 95),
            "server_total_p50_ms": percentile(server_ms[b], 50),
            "reader_alone_p50_ms": percentile(reader_ms[b], 50),
            "speed_vs_" + base: round(statistics.median(http_ms[base]) / statistics.median(http_ms[b]), 2),
        }
        for b in backends
    }
    print(json.dumps({"load_average_before": load_before, "load_average_after": load_after, **result}))
    if not args.no_write:
        body = (
            f"{len(questions)} news gold questions x {args.rounds} rounds, one client, warm servers (one per "
            f"reader backend, asked in turn), read_k={first.settings.read_k} passages. Load average (1, 5, 15 min) "
            f"before: {load_before}; after: {load_after}.\n\n"
            + table(
                [
                    (
                        reader_of(b),
                        r["query_encoder"],
                        r["http_p50_ms"],
                        r["http_p95_ms"],
                        r["server_total_p50_ms"],
                        r["reader_alone_p50_ms"],
                        f"{r['speed_vs_' + base]:.2f}x",
                    )
                    for b, r in result.items()
                ],
                (
                    "reader backend",
                    "questions embedded by",
                    "POST /ask p50 ms",
                    "POST /ask p95 ms",
                    "pipeline inside the server p50 ms",
                    "reader alone p50 ms (same passages)",
                    f"/ask speed vs {base}",
                ),
            )
        )
        write_section("ask_latency", "POST /ask latency (bundled articles), reader backends side by side", body)


if __name__ == "__main__":
    main()
