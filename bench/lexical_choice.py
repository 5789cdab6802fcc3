"""Choosing the persisted lexical index: today's in-memory BM25, SQLite FTS5 and tantivy.

    python -m bench.lexical_choice --squad-dev ../shared/data/squad/dev-v1.1.json \
        [--dense-cache /tmp/dense.npz] [--scale-passages 200000 1000000] [--skip-recall] [--no-write]

(a) Recall: the 48 SQuAD v1.1 dev articles chunked as `qa index` does; for each lexical index,
    R@1/5/10 and MRR@10 alone, and hybrid (dense FAISS flat top 10 + lexical top 10, fused by
    `rrf_fuse`, as the pipeline does), with search latency. A question counts as retrieved at k
    when one of the top k passages holds a gold span at its own offsets. The dense rankings are
    computed once with the real embedder (cached with --dense-cache) and shared by all rows.
(b) Scale: N passages made of the SQuAD v1.1 train paragraphs, repeated and cut to N (passage i is
    paragraph i mod 18,896), for FTS5 and tantivy: build time, size on disk, search latency for dev
    questions (k=10; a fifth of them also restricted to 1% and 0.1% of the ids), add-100 and delete-100 (each with its
    commit) and RSS. Build and queries each run in a fresh process, so RSS is that backend's own.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import random
import resource
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.fts5_lexical import Fts5Lexical
from bench.report import table, write_section
from qa.config import Settings
from qa.eval.gold import GoldQuestion, load_gold
from qa.eval.runner import hit_holds_answer
from qa.index.tantivy_engine import LexicalIndex, TantivyLexical
from qa.ingest.chunking import Chunker
from qa.retrieval.hybrid import rrf_fuse
from qa.training.memory_bm25 import BM25
from qa.types import Chunk, Hit

DOC = Path(__file__).resolve().parent.parent / "docs" / "lexical-choice.md"
KS = (1, 5, 10)
DEPTH = 10  # dense and lexical top 10 each, fused, as the pipeline (dense_k = bm25_k = read_k = 10)
BACKENDS = ("fts5", "tantivy")
SCALE_QUERIES = 1000
BATCH = 10_000
EDIT_ROUNDS = 5
FILTER_SHARES = (0.01, 0.001)  # allowed_ids: this share of the passages


# ---- opening each backend -----------------------------------------------------------------
def open_backend(name: str, folder: Path) -> tuple[LexicalIndex, Callable[[], None]]:
    """The index under `folder` (created when missing) and a function that closes it."""
    folder.mkdir(parents=True, exist_ok=True)
    if name == "fts5":
        conn = sqlite3.connect(folder / "store.sqlite")
        # What an article store would run with: WAL, fsync at checkpoints only.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return Fts5Lexical(conn), conn.close
    if name == "tantivy":
        index = TantivyLexical(folder / "tantivy")
        return index, index.close
    raise ValueError(f"unknown backend {name!r}")


def finish_bulk_load(index: LexicalIndex) -> None:
    """What each engine does after a bulk load: FTS5 merges its b-trees, tantivy its segments."""
    if isinstance(index, Fts5Lexical):
        index.optimize()
        index.commit()
    elif isinstance(index, TantivyLexical):
        index.wait_merges()


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    current = 0.0
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            current = int(line.split()[1]) / 1024
    return round(current, 1), round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ms_stats(times: Sequence[float]) -> tuple[float, float]:
    return round(float(np.percentile(times, 50)), 2), round(float(np.percentile(times, 95)), 2)


# ---- (a) recall on SQuAD dev ----------------------------------------------------------------
def squad_passages(squad_dev: str) -> tuple[list[Chunk], list[GoldQuestion]]:
    gold = load_gold(squad_dev)
    settings = Settings()
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    chunks: list[Chunk] = []
    for article in gold.articles:
        chunks.extend(chunker.chunk(article, first_id=len(chunks)))
    return chunks, gold.questions


def dense_rankings(chunks: list[Chunk], questions: list[GoldQuestion], cache: str | None) -> np.ndarray:
    """(questions, DEPTH) passage ids from FAISS flat inner product over the real embedder."""
    import faiss

    from qa.index.embedding import SentenceTransformerEmbedder
    from qa.loading import configure_torch_threads

    key = hashlib.sha256("\x1e".join([c.text for c in chunks] + [q.question for q in questions]).encode()).hexdigest()
    if cache and Path(cache).is_file():
        saved = np.load(cache)
        if str(saved["key"]) == key:
            return saved["ids"]
    configure_torch_threads(2)
    embedder = SentenceTransformerEmbedder()
    passages = embedder.encode([c.text for c in chunks], progress=True)
    queries = embedder.encode([q.question for q in questions], progress=True)
    index = faiss.IndexFlatIP(passages.shape[1])
    index.add(passages)
    _, ids = index.search(queries, DEPTH)
    if cache:
        np.savez(cache, key=key, ids=ids)
    return ids


def rank_of_answer(ranked: Sequence[int], chunks: list[Chunk], q: GoldQuestion) -> int | None:
    return next((i + 1 for i, r in enumerate(ranked) if hit_holds_answer(Hit(chunks[r], 0.0), q)), None)


def recall_row(ranks: list[int | None]) -> list[float]:
    n = len(ranks)
    return [round(100 * sum(1 for r in ranks if r and r <= k) / n, 1) for k in KS] + [
        round(sum(1 / r for r in ranks if r) / n, 3)
    ]


def run_recall(chunks: list[Chunk], questions: list[GoldQuestion], dense: np.ndarray, workdir: Path) -> dict:
    texts = [c.text for c in chunks]
    searchers: dict[str, tuple[float, Callable[[str], list[int]]]] = {}

    t0 = time.perf_counter()
    bm25 = BM25(texts)
    searchers["bm25 in memory (today)"] = (time.perf_counter() - t0, lambda q: [r for r, _ in bm25.top(q, DEPTH)])
    closers = []
    for name in BACKENDS:
        t0 = time.perf_counter()
        index, close = open_backend(name, workdir / f"squad-{name}")
        index.add([(c.id, c.text) for c in chunks])
        index.commit()
        finish_bulk_load(index)
        closers.append(close)

        def search_index(q: str, index: LexicalIndex = index) -> list[int]:
            return [i for i, _ in index.search(q, DEPTH)]

        searchers[name] = (time.perf_counter() - t0, search_index)

    out = {}
    for name, (build_s, search) in searchers.items():
        for q in questions[:50]:  # warm up caches
            search(q.question)
        times, alone, hybrid = [], [], []
        for q, dense_ids in zip(questions, dense, strict=True):
            t = time.perf_counter()
            lexical = search(q.question)
            times.append(1000 * (time.perf_counter() - t))
            fused = [r for r, *_ in rrf_fuse([int(i) for i in dense_ids if i >= 0], lexical)[:DEPTH]]
            alone.append(rank_of_answer(lexical, chunks, q))
            hybrid.append(rank_of_answer(fused, chunks, q))
        out[name] = {
            "build_s": round(build_s, 2),
            "alone": recall_row(alone),
            "hybrid": recall_row(hybrid),
            "ms": ms_stats(times),
        }
        print(json.dumps({name: out[name]}), flush=True)
    out["dense alone"] = {
        "alone": recall_row(
            [rank_of_answer([int(i) for i in d], chunks, q) for q, d in zip(questions, dense, strict=True)]
        )
    }
    for close in closers:
        close()
    return out


# ---- (b) scale ------------------------------------------------------------------------------
def train_paragraphs(path: str) -> list[str]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return [p["context"] for a in raw["data"] for p in a["paragraphs"]]


def scale_build(backend: str, n: int, folder: str, train: str) -> dict:
    """In a fresh process: index n passages in batches, commit, finish the bulk load."""
    paras = train_paragraphs(train)
    t0 = time.perf_counter()
    index, close = open_backend(backend, Path(folder))
    for start in range(0, n, BATCH):
        index.add([(i, paras[i % len(paras)]) for i in range(start, min(n, start + BATCH))])
    index.commit()
    loaded = time.perf_counter() - t0
    finish_bulk_load(index)
    build_s = time.perf_counter() - t0
    close()
    return {
        "build_s": round(build_s, 1),
        "merge_s": round(build_s - loaded, 1),
        "passages_per_s": round(n / build_s),
        "disk_mb": round(disk_bytes(Path(folder)) / 2**20, 1),
        "build_rss_peak_mb": rss_mb()[1],
    }


def scale_query(backend: str, n: int, folder: str, train: str, questions: list[str]) -> dict:
    """In a fresh process: open the built index, search, then add and delete 100 passages."""
    paras = train_paragraphs(train)
    rss_before_open = rss_mb()[0]
    t0 = time.perf_counter()
    index, close = open_backend(backend, Path(folder))
    index.search(questions[0], DEPTH)
    open_ms = 1000 * (time.perf_counter() - t0)
    for q in questions[:50]:
        index.search(q, DEPTH)
    times = []
    for q in questions:
        t = time.perf_counter()
        index.search(q, DEPTH)
        times.append(1000 * (time.perf_counter() - t))
    rng = random.Random(7)
    filtered = {}
    for share in FILTER_SHARES:  # random ids: a filter uncorrelated with the query
        allowed = sorted(rng.sample(range(n), int(n * share)))
        times_share = []
        for q in questions[: len(questions) // 5]:
            t = time.perf_counter()
            index.search(q, DEPTH, allowed_ids=allowed)
            times_share.append(1000 * (time.perf_counter() - t))
        filtered[share] = ms_stats(times_share)
    rss_search = rss_mb()[0] - rss_before_open
    adds, deletes = [], []
    for r in range(EDIT_ROUNDS):
        new = [(n + 100 * r + i, paras[(7 * i + r) % len(paras)]) for i in range(100)]
        t = time.perf_counter()
        index.add(new)
        index.commit()
        adds.append(1000 * (time.perf_counter() - t))
        old = [(i, paras[i % len(paras)]) for i in rng.sample(range(n), 100)]
        t = time.perf_counter()
        index.delete(old)
        index.commit()
        deletes.append(1000 * (time.perf_counter() - t))
    after = [index.search(q, DEPTH) for q in questions[:20]]  # still searchable after the edits
    close()
    return {
        "open_ms": round(open_ms, 1),
        "ms": ms_stats(times),
        "filtered_ms": filtered,
        "add100_ms": round(statistics.median(adds), 1),
        "delete100_ms": round(statistics.median(deletes), 1),
        "search_rss_mb": round(rss_search, 1),
        "rss_peak_mb": rss_mb()[1],
        "hits_after_edits": sum(map(len, after)),
    }


def in_fresh_process(fn: Callable, *args) -> dict:
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run_scale(n: int, backends: Sequence[str], train: str, questions: list[str], workdir: Path) -> dict:
    out = {}
    for backend in backends:
        folder = workdir / f"scale-{backend}-{n}"
        result = in_fresh_process(scale_build, backend, n, str(folder), train)
        result.update(in_fresh_process(scale_query, backend, n, str(folder), train, questions))
        out[backend] = result
        print(json.dumps({f"{backend} @ {n}": result}), flush=True)
    return out


# ---- report ---------------------------------------------------------------------------------
def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def write_doc_section(name: str, title: str, body: str) -> None:
    write_section(name, title, body, doc=DOC)


def recall_body(result: dict, n_questions: int, n_passages: int, load: tuple[str, str]) -> str:
    rows = []
    for name, r in result.items():
        if "hybrid" in r:
            rows.append((name, *r["alone"], *r["hybrid"], *r["ms"], r["build_s"]))
        else:
            rows.append((name, *r["alone"], *(["-"] * 4), "-", "-", "-"))
    header = (
        "retriever",
        *(f"alone R@{k}" for k in KS),
        "alone MRR@10",
        *(f"hybrid R@{k}" for k in KS),
        "hybrid MRR@10",
        "lexical search ms p50",
        "p95",
        "build s",
    )
    return (
        f"{n_questions} questions over {n_passages} passages; hybrid = dense top {DEPTH} + lexical top {DEPTH}, "
        f"`rrf_fuse`, first {DEPTH}. Load average before / after: {load[0]} / {load[1]}.\n\n" + table(rows, header)
    )


def scale_body(n: int, n_queries: int, result: dict, load: tuple[str, str]) -> str:
    rows = [
        (
            b,
            r["build_s"],
            r["merge_s"],
            r["passages_per_s"],
            r["disk_mb"],
            *r["ms"],
            *(x for share in FILTER_SHARES for x in r["filtered_ms"][share]),
            r["add100_ms"],
            r["delete100_ms"],
            r["open_ms"],
            r["search_rss_mb"],
            r["build_rss_peak_mb"],
        )
        for b, r in result.items()
    ]
    header = (
        "backend",
        "build s",
        "of which merge s",
        "passages/s",
        "disk MB",
        "search ms p50",
        "p95",
        *(x for share in FILTER_SHARES for x in (f"{100 * share:g}% ids ms p50", "p95")),
        "add 100 + commit ms",
        "delete 100 + commit ms",
        "open + 1st search ms",
        "search RSS MB",
        "build peak RSS MB",
    )
    return (
        f"{n:,} passages (SQuAD v1.1 train paragraphs repeated/cut), {n_queries} dev questions "
        f"(a fifth of them for the filtered columns: random ids), k={DEPTH}. "
        f"Load average before / after: {load[0]} / {load[1]}.\n\n" + table(rows, header)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad-dev", required=True)
    ap.add_argument("--squad-train", help="default: train-v1.1.json beside --squad-dev")
    ap.add_argument(
        "--scale-passages",
        type=int,
        nargs="*",
        default=[200_000, 1_000_000],
        help="passage counts for part (b); none to skip it",
    )
    ap.add_argument("--scale-queries", type=int, default=SCALE_QUERIES, help="dev questions searched in part (b)")
    ap.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS), help="for part (b)")
    ap.add_argument("--skip-recall", action="store_true", help="skip part (a)")
    ap.add_argument("--dense-cache", help="npz file for the dense rankings of part (a)")
    ap.add_argument("--workdir", help="where the indexes are built (default: a temporary folder)")
    ap.add_argument("--no-write", action="store_true", help=f"do not write {DOC.name}")
    args = ap.parse_args()
    train = args.squad_train or str(Path(args.squad_dev).with_name("train-v1.1.json"))

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        chunks, questions = squad_passages(args.squad_dev)
        if not args.skip_recall:
            dense = dense_rankings(chunks, questions, args.dense_cache)
            load = load_line()
            result = run_recall(chunks, questions, dense, workdir)
            body = recall_body(result, len(questions), len(chunks), (load, load_line()))
            print(body)
            if not args.no_write:
                write_doc_section("lexical_choice_recall", "Recall and latency on SQuAD v1.1 dev (48 articles)", body)
        step = max(1, len(questions) // args.scale_queries)
        sample = [q.question for q in questions[::step][: args.scale_queries]]
        for n in args.scale_passages:
            load = load_line()
            result = run_scale(n, args.backends, train, sample, workdir)
            body = scale_body(n, len(sample), result, (load, load_line()))
            print(body)
            if not args.no_write:
                write_doc_section(f"lexical_choice_scale_{n}", f"Scale: {n:,} passages", body)


if __name__ == "__main__":
    main()
