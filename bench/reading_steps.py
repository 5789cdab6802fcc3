"""Reading less, step by step: each step's `POST /ask` latency over HTTP, where the time goes
(timing_ms by stage) and what the reader read, side by side.

    python -m bench.reading_steps [--rounds 3] [--steps 0,2,5]

One warm server per step over one index of the bundled articles; every question is asked of
each server in turn, the order rotating, one request at a time, so that load from other
processes falls on all alike. Each step's F1 comes from the news benchmark run with the same
settings (`QA_READER_BACKEND=... QA_READ_FIRST=... python -m bench.news_eval`); docs/latency.md
puts the two side by side.

CTranslate2 can be told to use only AVX2 kernels (CT2_FORCE_CPU_ISA=AVX2 for its own, and
MKL_ENABLE_INSTRUCTIONS=AVX2 for the int8 matrix products it leaves to oneMKL: without the
second, nothing changes): on a machine with AVX512 or VNNI, those steps show the code path of an
AVX2 laptop. ONNX Runtime has no such switch.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.report import load_average, percentile, table, write_section
from bench.server_process import ServerProcess
from qa.eval.gold import load_gold

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "seeds" / "gold" / "news_gold.jsonl"
STAGES = ("embed", "retrieve", "tokenize", "read", "assemble")

AVX2_ONLY = {"CT2_FORCE_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}  # CTranslate2 as on an AVX2 laptop
# (what the step is, the settings it runs with). The first is the reference of the speed ratios.
STEPS: list[tuple[str, dict[str, str]]] = [
    ("float32 (ONNX), 10 passages at once", {"QA_READER_BACKEND": "onnx-fp32", "QA_READ_FIRST": "0"}),
    ("int8 (ONNX), 10 passages at once", {"QA_READER_BACKEND": "onnx-int8", "QA_READ_FIRST": "0"}),
    ("int8 (ONNX), cascade: 3 first, 7 more when unsure", {"QA_READER_BACKEND": "onnx-int8"}),
    (
        "int8 (ONNX), cascade, sentence windows of 400 characters",
        {"QA_READER_BACKEND": "onnx-int8", "QA_FOCUS_CHARS": "400"},
    ),
    ("int8 (CTranslate2), 10 passages at once", {"QA_READER_BACKEND": "ctranslate2-int8", "QA_READ_FIRST": "0"}),
    ("int8 (CTranslate2), cascade", {"QA_READER_BACKEND": "ctranslate2-int8"}),
    (
        "int8 (CTranslate2, AVX2 kernels only), 10 passages at once",
        {"QA_READER_BACKEND": "ctranslate2-int8", "QA_READ_FIRST": "0", **AVX2_ONLY},
    ),
    (
        "int8 (CTranslate2, AVX2 kernels only), cascade",
        {"QA_READER_BACKEND": "ctranslate2-int8", **AVX2_ONLY},
    ),
]


def latency(steps: list[tuple[str, dict[str, str]]], rounds: int) -> dict[str, dict]:
    questions = [q.question for q in load_gold(GOLD).questions]
    http_ms: dict[str, list[float]] = {name: [] for name, _ in steps}
    stage_ms: dict[str, dict[str, list[float]]] = {name: {s: [] for s in STAGES} for name, _ in steps}
    tokens: dict[str, list[int]] = {name: [] for name, _ in steps}
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp, ExitStack() as stack:
        clients = {}
        for i, (name, env) in enumerate(steps):  # the first server builds the index, the others open it
            server = stack.enter_context(ServerProcess(tmp, Path(tmp) / f"server-{i}.log", timeout_s=600, env=env))
            clients[name] = stack.enter_context(httpx.Client(base_url=server.url, timeout=60))
        for client in clients.values():
            for q in questions[:5]:
                client.post("/ask", json={"question": q}).raise_for_status()  # warm-up
        names = list(clients)
        for i, q in enumerate(questions * rounds):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                t = time.perf_counter()
                r = clients[name].post("/ask", json={"question": q})
                http_ms[name].append(1000 * (time.perf_counter() - t))
                r.raise_for_status()
                body = r.json()
                for s in STAGES:
                    stage_ms[name][s].append(body["timing_ms"][s])
                tokens[name].append(body["reading"].get("tokens", 0))
    return {
        name: {
            "requests": len(http_ms[name]),
            "http_p50_ms": percentile(http_ms[name], 50),
            "http_p95_ms": percentile(http_ms[name], 95),
            "stages_p50_ms": {s: percentile(v, 50) for s, v in stage_ms[name].items()},
            "tokens_p50": percentile(tokens[name], 50),
        }
        for name in names
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", help="comma-separated step numbers to run (default: all)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    steps = [STEPS[int(i)] for i in args.steps.split(",")] if args.steps else STEPS
    load_before = load_average()
    timed = latency(steps, args.rounds)
    load_after = load_average()
    print(json.dumps({"load_average_before": load_before, "load_average_after": load_after, "timed": timed}, indent=1))
    if args.no_write:
        return
    base = steps[0][0]
    rows = []
    for name, _ in steps:
        t = timed[name]
        rows.append(
            (
                name,
                t["http_p50_ms"],
                t["http_p95_ms"],
                f"{timed[base]['http_p50_ms'] / t['http_p50_ms']:.2f}x",
                " / ".join(str(t["stages_p50_ms"][s]) for s in STAGES),
                t["tokens_p50"],
            )
        )
    body = (
        f"{len(load_gold(GOLD).questions)} news gold questions over the bundled articles x {args.rounds} rounds, one "
        f"client, one warm server per step, asked in turn. Load average (1, 5, 15 min) before: {load_before}; "
        f"after: {load_after}. F1 of each step: docs/latency.md.\n\n"
        + table(
            rows,
            (
                "step",
                "POST /ask p50 ms",
                "p95 ms",
                f"p50 speed vs {base}",
                "stages p50 ms: " + " / ".join(STAGES),
                "tokens read p50",
            ),
        )
    )
    write_section("reading_steps", "Reading less, step by step: /ask latency side by side", body)


if __name__ == "__main__":
    main()
