"""Scale-out figures on one machine: embedding passages/s and /ask answers/s, one plain process
beside a local Ray cluster with 1 and 2 workers (replicas) of one CPU each; prints a capacity model.

    python -m bench.cluster [--articles 100] [--clients 4] [--seconds 30] [--cpus 2]

Needs the cluster extra. Starts one local Ray cluster of --cpus CPUs, used by every run.
Ingest: the passages of the first --articles seed articles, embedded by one process with one
torch thread, then by `embed_on_cluster` (what `qa ingest --ray` runs) with 1 and 2 workers.
"wall" is the whole job; "steady" leaves out its start-up (workers spawned, models loaded: until
the first batch is back), which a real ingest pays once. Serve: `qa serve` (one process,
QA_THREADS=2) beside `qa serve --ray --replicas 1|2` over an index of the same articles, asked
the news gold questions by --clients concurrent clients for --seconds (after a warm-up).
Beside the wall rates (what this shared machine gave), the CPU time of the working processes:
passages and answers per CPU-second, the per-core figures of the capacity model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import ray

from bench.load import run as ask_load
from bench.report import load_average, machine
from bench.server_process import ROOT, ServerProcess, health
from qa.cluster.embed_job import embed_on_cluster
from qa.cluster.serve_app import REPLICA_HEADER
from qa.config import Settings
from qa.ingest.files import ingest_paths
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline, embedded_batch

ARTICLES_PER_HOUR = 1_000_000
TARGET_QUESTIONS_PER_S = 100


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def actor_pids(class_part: str) -> list[int]:
    """Live actors of this cluster whose class name contains `class_part` (Ray's GCS view; the
    public state API needs the dashboard, off here)."""
    from ray._private import state

    return [a["Pid"] for a in state.actors().values() if a["State"] == "ALIVE" and class_part in a["ActorClassName"]]


def embed_locally(pipeline: QAPipeline, texts: list[str]) -> tuple[np.ndarray, dict]:
    configure_torch_threads(1)
    pipeline.embedder.encode(texts[:8])  # model loaded and warm
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = pipeline.embedder.encode(texts, batch_size=32)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = {
        "run": "one process, 1 torch thread",
        "cpus": 1,
        "passages": len(texts),
        "wall_s": round(wall, 1),
        "steady_per_s": round(len(texts) / wall, 2),
        "per_cpu_s": round(len(texts) / cpu, 2),
    }
    return vectors, row


def embed_on_ray(texts: list[str], workers: int) -> tuple[np.ndarray, dict]:
    start = time.perf_counter()
    first: tuple[float, int] | None = None
    parts = []
    for block in embed_on_cluster(texts, (None, "torch"), workers):
        parts.append(block)
        if first is None:
            first = (time.perf_counter(), len(block))
    end = time.perf_counter()
    assert first is not None
    steady = (len(texts) - first[1]) / (end - first[0])
    row = {
        "run": f"Ray Data, {workers} worker(s) of 1 CPU",
        "cpus": workers,
        "passages": len(texts),
        "wall_s": round(end - start, 1),
        "start_up_s": round(first[0] - start, 1),
        "steady_per_s": round(steady, 2),
    }
    return np.concatenate(parts), row


def wait_for_replicas(url: str, replicas: int, timeout_s: float = 600) -> None:
    """ServerProcess returns at the first 200: a Ray app is measured once every replica is."""
    import httpx

    ready: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while len(ready) < replicas:
        r = httpx.get(f"{url}/healthz", timeout=30)
        if r.status_code == 200:
            ready.add(r.headers.get(REPLICA_HEADER, "single"))
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(ready)} of {replicas} replicas ready")
        time.sleep(0.2)


def serve_run(
    name: str, cpus: int, index_dir: Path, args: list[str], replicas: int, clients: int, seconds: float
) -> dict:
    """Answers/s (wall: what clients got on this shared machine) and answers per CPU-second of
    the answering processes (what a core of its own would give)."""
    log = Path(tempfile.mkdtemp(prefix="qa-bench-cluster-")) / "server.log"
    with ServerProcess(index_dir, log, env={"QA_THREADS": "2"}, timeout_s=600, args=args) as server:
        wait_for_replicas(server.url, replicas)
        asyncio.run(ask_load(server.url, server.pid, clients, 5))  # every replica warm
        answering = actor_pids("QAReplica") if args else [server.pid]
        proxy = actor_pids("ProxyActor") if args else []
        before = cpu_seconds(answering), cpu_seconds(proxy)
        result = asyncio.run(ask_load(server.url, server.pid, clients, seconds))
        used = cpu_seconds(answering) - before[0], cpu_seconds(proxy) - before[1]
        assert health(server.url)[0] == 200
    answers = result["ok"]
    return {
        "run": name,
        "cpus": cpus,
        "answers_per_s": result["ok_per_s"],
        "p50_ms": result["p50_ms"],
        "p95_ms": result["p95_ms"],
        "busy_503": result["busy_503"],
        "errors": result["errors"],
        "answers_per_cpu_s": round(answers / used[0], 2) if answers else None,
        "proxy_cpu_s_per_answer": round(used[1] / answers, 3) if answers and args else None,
        "load_average": load_average(),
    }


def capacity(ingest: list[dict], serve: list[dict], passages_per_article: float) -> str:
    """Cores = work per second / work per core-second, from the CPU-time figures."""
    per_core_embed = next(r["per_cpu_s"] for r in ingest if "per_cpu_s" in r)
    ray_serve = [r for r in serve if r["run"].startswith("Ray") and r["answers_per_cpu_s"]]
    cpu_per_answer = max(1 / r["answers_per_cpu_s"] + (r["proxy_cpu_s_per_answer"] or 0) for r in ray_serve)
    need_embed = ARTICLES_PER_HOUR * passages_per_article / 3600 / per_core_embed
    return (
        f"capacity model: {per_core_embed:.1f} passages per CPU-second x {passages_per_article:.2f} passages per "
        f"article -> {ARTICLES_PER_HOUR:,} articles in an hour need {need_embed:.0f} cores; "
        f"{cpu_per_answer:.3f} CPU-seconds per answer (replica + proxy) -> {TARGET_QUESTIONS_PER_S} questions/s "
        f"need {TARGET_QUESTIONS_PER_S * cpu_per_answer:.0f} cores"
    )


def start_local_ray(cpus: int) -> None:
    """A local Ray cluster of `cpus` CPUs for this process, its workers importing this checkout's
    qa (they inherit PYTHONPATH), Ray Data's progress quiet as under `qa ingest --ray`."""
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--articles", type=int, default=100, help="seed articles to embed and serve")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = ap.parse_args()
    index_dir = Path(tempfile.mkdtemp(prefix="qa-bench-cluster-")) / "index"
    pipeline = QAPipeline(Settings(index_dir=index_dir))
    articles = ingest_paths([pipeline.settings.seeds_dir], pipeline.settings.max_article_chars).articles
    articles = articles[: args.articles]
    chunks = pipeline.chunk_articles(articles)
    texts = [c.text for a in articles for c in chunks[a.id]]
    print(f"{machine()}; {len(articles)} articles, {len(texts)} passages; load average {load_average()}", flush=True)

    start_local_ray(args.cpus)
    reference, row = embed_locally(pipeline, texts)
    ingest = [{**row, "load_average": load_average()}]
    print(json.dumps(ingest[-1]), flush=True)
    for workers in (1, 2):
        vectors, row = embed_on_ray(texts, workers)
        ingest.append({**row, "max_abs_diff": float(np.abs(vectors - reference).max()), "load_average": load_average()})
        print(json.dumps(ingest[-1]), flush=True)

    pipeline.build_from_articles([])
    pipeline.add_embedded(embedded_batch(articles, chunks, reference))
    address = ray.get_runtime_context().gcs_address
    serve = [serve_run("one process (uvicorn), 2 torch threads", 2, index_dir, [], 1, args.clients, args.seconds)]
    print(json.dumps(serve[-1]), flush=True)
    for replicas in (1, 2):
        ray_args = ["--ray", address, "--replicas", str(replicas)]
        serve.append(
            serve_run(
                f"Ray Serve, {replicas} replica(s) of 1 CPU",
                replicas,
                index_dir,
                ray_args,
                replicas,
                args.clients,
                args.seconds,
            )
        )
        print(json.dumps(serve[-1]), flush=True)
    ray.shutdown()
    print(capacity(ingest, serve, len(texts) / len(articles)))
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
