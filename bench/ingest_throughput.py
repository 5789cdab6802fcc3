"""Bulk ingest throughput by passage embedder (QA_PASSAGE_EMBEDDER): passages/s of `qa ingest`'s
path (read the JSONL, chunk, embed, commit in groups of 256 articles) on real news text, the
first N Reuters-21578 stories, with PyTorch float32 (today's default), the ONNX copy in float32
and in int8; at 2 threads, at 1 (per core), and through `qa ingest --ray` on a local Ray cluster.

    python -m bench.ingest_throughput --reuters ../shared/data/reuters21578/reuters21578.jsonl \\
        [--stories 2000] [--rounds 2] [--ray-workers 2] [--threads 2 1]

Each measurement ingests the same stories into a fresh index that holds a few other stories
(built untimed, as `qa ingest` adds to an index that exists), after the model is loaded and has
run once: what a bulk ingest costs per passage, not start-up. The settings run in turn, the order
rotated each round, so that load from other processes falls on all alike; the table gives each
one's median over the rounds, the load average around each run, and the speed against torch at
the same threads. The Ray runs (ingest_on_cluster: workers of one CPU, one thread each) come after
the single-process ones, on a cluster started for them, and include the Ray Data job's start-up
(its workers loading the model), which every `qa ingest --ray` pays.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.news_eval import REUTERS
from bench.report import load_average, table, write_section
from qa.config import Settings
from qa.ingest.files import ingest_paths
from qa.loading import configure_torch_threads
from qa.names import PASSAGE_EMBEDDERS
from qa.pipeline import QAPipeline
from qa.types import Article

BASE_STORIES = 8  # the index the stories are added to


def stories(reuters: Path, n: int, workdir: Path) -> tuple[list[Article], list[Article]]:
    """The base index's stories and the `n` after them, read by `qa ingest`'s reader."""
    subset = workdir / "stories.jsonl"
    with open(reuters, encoding="utf-8") as src:
        subset.write_text("".join(itertools.islice(src, BASE_STORIES + n)), encoding="utf-8")
    articles = ingest_paths([subset]).articles
    return articles[:BASE_STORIES], articles[BASE_STORIES:]


def fresh_pipeline(workdir: Path, embedder: str, threads: int, base: Sequence[Article]) -> QAPipeline:
    configure_torch_threads(threads)
    index_dir = Path(tempfile.mkdtemp(prefix="index-", dir=workdir))
    pipeline = QAPipeline(Settings(index_dir=index_dir, passage_embedder=embedder, threads=threads))
    pipeline.build_from_articles(base)  # also loads the embedder and runs it once
    return pipeline


def timed(pipeline: QAPipeline, ingest: Callable[[QAPipeline], object]) -> dict:
    before = pipeline.counts().passages
    load_before = load_average()
    t0 = time.perf_counter()
    ingest(pipeline)
    seconds = time.perf_counter() - t0
    passages = pipeline.counts().passages - before
    return {"passages": passages, "s": seconds, "load": [load_before, load_average()]}


def run_rounds(arms: list[tuple[str, int]], rounds: int, measure: Callable[[str, int], dict]) -> dict:
    """Every arm once a round, the order rotated each round."""
    runs: dict[tuple[str, int], list[dict]] = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in arms[r % len(arms) :] + arms[: r % len(arms)]:
            got = measure(*arm)
            runs[arm].append(got)
            print(json.dumps({"round": r, "arm": arm, **got}), flush=True)
    return runs


def ray_measure(workdir: Path, base: Sequence[Article], articles: Sequence[Article], workers: int) -> Callable:
    from bench.cluster import start_local_ray  # Ray: only with --ray-workers
    from qa.cluster.embed_job import ingest_on_cluster

    start_local_ray(workers)

    def measure(embedder: str, threads: int) -> dict:
        pipeline = fresh_pipeline(workdir, embedder, threads, base)
        return timed(pipeline, lambda p: ingest_on_cluster(p, articles, workers))

    return measure


def rows_of(runs: dict, label: Callable[[str, int], str], per_core: Callable[[int], int]) -> list[tuple]:
    rate = {arm: statistics.median(r["passages"] / r["s"] for r in got) for arm, got in runs.items()}
    rows = []
    for (embedder, threads), got in runs.items():
        base = rate.get(("torch", threads))
        rows.append(
            (
                label(embedder, threads),
                got[0]["passages"],
                " / ".join(f"{r['passages'] / r['s']:.1f}" for r in got),
                f"{rate[embedder, threads]:.1f}",
                f"{rate[embedder, threads] / per_core(threads):.1f}",
                f"{rate[embedder, threads] / base:.2f}x" if base else "-",
                "; ".join(f"{r['load'][0]} -> {r['load'][1]}" for r in got),
            )
        )
    return rows


HEADER = ("setting", "passages", "passages/s each round", "median", "per core", "vs torch", "load average (1/5/15 min)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reuters", type=Path, default=REUTERS, help="the Reuters-21578 article JSONL")
    ap.add_argument("--stories", type=int, default=2000, help="stories ingested per measurement")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--embedders", nargs="+", default=list(PASSAGE_EMBEDDERS), choices=PASSAGE_EMBEDDERS)
    ap.add_argument("--ray-workers", type=int, default=2, help="workers of the local Ray cluster (0: no Ray runs)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if not args.reuters.is_file():
        ap.error(f"{args.reuters}: no such file (the Reuters-21578 JSONL; see ../shared/data/reuters21578)")
    with tempfile.TemporaryDirectory(prefix="qa-ingest-") as tmp:
        workdir = Path(tmp)
        base, articles = stories(args.reuters, args.stories, workdir)

        def local(embedder: str, threads: int) -> dict:
            return timed(fresh_pipeline(workdir, embedder, threads, base), lambda p: p.add_articles(articles))

        arms = [(e, t) for t in args.threads for e in args.embedders]
        body = table(
            rows_of(run_rounds(arms, args.rounds, local), lambda e, t: f"{e}, {t} thread(s)", lambda t: t), HEADER
        )
        if args.ray_workers:
            measure = ray_measure(workdir, base, articles, args.ray_workers)
            ray_runs = run_rounds([(e, 1) for e in args.embedders], args.rounds, measure)
            ray_rows = rows_of(
                ray_runs, lambda e, _: f"{e}, qa ingest --ray, {args.ray_workers} workers", lambda _: args.ray_workers
            )
            body += "\n\n" + table(ray_rows, HEADER)
    body = (
        f"`qa ingest`'s path (chunk, embed, commit) over the first {len(articles)} Reuters-21578 stories "
        f"added to an index of {BASE_STORIES}, {args.rounds} rounds in rotated order; models loaded beforehand; "
        "per core: passages/s divided by the threads (or Ray workers).\n\n" + body
    )
    print(body)
    if not args.no_write:
        write_section("ingest_throughput", "Bulk ingest: passages/s by passage embedder", body)


if __name__ == "__main__":
    main()
