"""Load test: N concurrent clients asking for T seconds on loopback; counts errors and 503s.

    python -m bench.load [--clients 50] [--seconds 60]

Bounded in time and count, loopback only. A 503 with Retry-After is the server refusing work
it cannot queue (by design); anything else non-200 is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx

from bench.report import table, write_section
from bench.server import running_server
from qa.eval.gold import load_gold
from qa.eval.metrics import percentile

GOLD = Path(__file__).resolve().parent.parent / "seeds" / "gold" / "news_gold.jsonl"
MAX_REQUESTS = 100_000


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def client_loop(url: str, questions: list[str], stop_at: float, stats: dict, offset: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        i = offset
        while time.monotonic() < stop_at and stats["sent"] < MAX_REQUESTS:
            stats["sent"] += 1
            t = time.perf_counter()
            try:
                r = await client.post("/ask", json={"question": questions[i % len(questions)]})
                code = r.status_code
            except httpx.HTTPError:
                code = -1
            ms = 1000 * (time.perf_counter() - t)
            if code == 200:
                stats["ok"].append(ms)
            elif code == 503:
                stats["busy"] += 1
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
            else:
                stats["errors"] += 1
            i += 1


async def run(url: str, pid: int, clients: int, seconds: float) -> dict:
    questions = [q.question for q in load_gold(GOLD).questions]
    stats = {"sent": 0, "ok": [], "busy": 0, "errors": 0}
    rss_before = rss_mb(pid)
    start = time.monotonic()
    await asyncio.gather(*(client_loop(url, questions, start + seconds, stats, n) for n in range(clients)))
    elapsed = time.monotonic() - start
    ok = sorted(stats["ok"])
    return {
        "clients": clients, "seconds": round(elapsed, 1), "requests": stats["sent"], "ok": len(ok),
        "busy_503": stats["busy"], "errors": stats["errors"], "ok_per_s": round(len(ok) / elapsed, 2),
        "p50_ms": round(statistics.median(ok), 1) if ok else None,
        "p95_ms": round(percentile(ok, 95), 1) if ok else None,
        "rss_mb_before": round(rss_before, 1), "rss_mb_after": round(rss_mb(pid), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    with running_server() as (url, proc):
        result = asyncio.run(run(url, proc.pid, args.clients, args.seconds))
    print(json.dumps(result))
    if not args.no_write:
        body = table([(result["clients"], result["seconds"], result["requests"], result["ok"], result["busy_503"],
                       result["errors"], result["ok_per_s"], result["p50_ms"], result["p95_ms"],
                       f"{result['rss_mb_before']} -> {result['rss_mb_after']}")],
                     ("clients", "s", "requests", "200", "503 busy", "errors", "answers/s", "p50 ms", "p95 ms", "server RSS MB"))
        body += ("\n\nOne model call at a time (2 cores), up to the queue limit waiting; latency under load is "
                 "queueing time: about clients / throughput.")
        write_section("load", f"Load: {args.clients} concurrent clients for {args.seconds:.0f} s", body)


if __name__ == "__main__":
    main()
