"""Recall with int8 passage vectors (QA_PASSAGE_EMBEDDER=onnx-int8) against float32 (torch), on
SQuAD dev and on the news benchmark over the Reuters archive.

    python -m bench.passage_embedders --squad-dev ../shared/data/squad/dev-v1.1.json \\
        [--news-split dev|test|none] [--archive whole|slice] [--reuters FILE]

SQuAD dev (retrieval only): the 48 articles indexed once per passage embedder; every question
embedded once per query encoder (onnx-fp32, the same vectors as torch, and onnx-int8); recall@k
of dense and hybrid retrieval, a question counting when a passage holds a gold span at its own
offsets. News: each passage embedder's index of the archive (kept in eval-out/ and reused, as
bench.news_eval does), every question of the split asked through `QAPipeline.ask` (questions
embedded as auto chooses: onnx-fp32 when installed); recall@1/5/10 of a passage holding the
answer over the passages read, and F1. Differences against torch passages are paired per
question, with 95% intervals (normal approximation).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.news_eval import NEWS, REUTERS, ROOT, open_archive
from bench.report import load_average, paired, table, write_section
from qa.config import Settings
from qa.eval.gold import GoldQuestion, load_gold
from qa.eval.runner import evaluate, hit_holds_answer
from qa.index.embedding import SentenceTransformerEmbedder
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline

KS = (1, 5, 10)
PASSAGES = ("torch", "onnx-int8")
QUERIES = ("onnx-fp32", "onnx-int8")


def ranks(pipeline: QAPipeline, questions: Sequence[GoldQuestion], vectors: np.ndarray, mode: str) -> np.ndarray:
    """The rank of the first passage holding a gold span (0: not in the top max(KS))."""
    out = np.zeros(len(questions), int)
    for i, (q, v) in enumerate(zip(questions, vectors, strict=True)):
        hits = pipeline.retriever.search(q.question, max(KS), mode=mode, vector=v)
        out[i] = next((r + 1 for r, h in enumerate(hits) if hit_holds_answer(h, q)), 0)
    return out


def squad(path: str, limit: int | None, threads: int) -> tuple[list[tuple], int]:
    gold = load_gold(path)
    questions = gold.questions[:limit]
    vectors = {}
    for name in QUERIES:
        embedder = SentenceTransformerEmbedder(query_encoder=name, threads=threads)
        vectors[name] = np.stack([embedder.encode_query(q.question) for q in tqdm(questions, desc=name, unit="q")])
    found: dict[tuple[str, str, str], np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        for passages in PASSAGES:
            settings = Settings(index_dir=Path(tmp) / passages, passage_embedder=passages, threads=threads)
            pipeline = QAPipeline(settings)
            pipeline.build_from_articles(gold.articles, progress=True)
            for query in QUERIES:
                for mode in ("dense", "hybrid"):
                    found[passages, query, mode] = ranks(pipeline, questions, vectors[query], mode)
    rows = []
    for (passages, query, mode), rank in found.items():
        base = found["torch", "onnx-fp32", mode]
        hit = {k: (rank > 0) & (rank <= k) for k in KS}
        was = {k: (base > 0) & (base <= k) for k in KS}
        rows.append(
            (
                passages,
                query,
                mode,
                " / ".join(f"{100 * hit[k].mean():.2f}" for k in KS),
                " / ".join(paired(100 * hit[k], 100 * was[k]) for k in KS),
            )
        )
    return rows, len(questions)


def news(split: str, archive: str, reuters: Path, threads: int) -> tuple[list[tuple], int]:
    results = {}
    for passages in PASSAGES:
        settings = Settings(passage_embedder=passages, threads=threads)
        index_dir = ROOT / "eval-out" / f"news-{archive}-index-{passages}"
        pipeline = open_archive(settings, archive, reuters, index_dir)
        results[passages], _ = evaluate(pipeline, load_gold(NEWS / f"{split}.jsonl"), progress=True)
    base = [r for r in results["torch"] if r.answerable]
    rows = []
    for passages, scored in results.items():
        answerable = [r for r in scored if r.answerable]
        rank = np.array([r.gold_rank or 0 for r in answerable])
        was = np.array([r.gold_rank or 0 for r in base])
        hit = {k: (rank > 0) & (rank <= k) for k in KS}
        f1 = np.array([r.f1 for r in scored])
        rows.append(
            (
                passages,
                " / ".join(f"{100 * hit[k].mean():.2f}" for k in KS),
                " / ".join(paired(100 * hit[k], 100 * ((was > 0) & (was <= k))) for k in KS),
                f"{100 * f1.mean():.2f}",
                paired(100 * f1, 100 * np.array([r.f1 for r in results["torch"]])),
            )
        )
    return rows, len(base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad-dev", help="SQuAD v1.1 dev JSON (none: no SQuAD figures)")
    ap.add_argument("--limit", type=int, help="SQuAD questions (default: all 10,570)")
    ap.add_argument("--news-split", choices=("dev", "test", "none"), default="dev")
    ap.add_argument("--archive", choices=("whole", "slice"), default="whole")
    ap.add_argument("--reuters", type=Path, default=REUTERS, help="the Reuters-21578 article JSONL")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    configure_torch_threads(args.threads)
    if args.squad_dev:
        rows, n = squad(args.squad_dev, args.limit, args.threads)
        body = (
            f"SQuAD v1.1 dev, {n} questions over the 48 articles, retrieval only; differences against "
            "torch passages with onnx-fp32 questions (the same vectors as torch), paired, 95% intervals.\n\n"
            + table(rows, ("passages", "questions", "retrieval", "R@1 / R@5 / R@10", "vs torch passages (points)"))
        )
        report("passage_embedders_squad", "Passage embedders on SQuAD dev: int8 against float32", body, args)
    if args.news_split != "none":
        rows, n = news(args.news_split, args.archive, args.reuters, args.threads)
        body = (
            f"News benchmark, {args.news_split} split, {args.archive} archive, through `QAPipeline.ask` "
            f"(questions embedded as auto chooses); recall over the passages read, {n} answerable "
            "questions; F1 over all; paired differences against torch passages, 95% intervals.\n\n"
            + table(rows, ("passages", "R@1 / R@5 / R@10", "vs torch (points)", "F1", "F1 vs torch"))
        )
        title = f"Passage embedders on the news benchmark ({args.news_split}, {args.archive}): int8 against float32"
        report(f"passage_embedders_news_{args.news_split}_{args.archive}", title, body, args)


def report(name: str, title: str, body: str, args: argparse.Namespace) -> None:
    body += f"\n\nLoad average after: {load_average()} (the figures are deterministic; load only slows them)."
    print(body, flush=True)
    if not args.no_write:
        write_section(name, title, body)


if __name__ == "__main__":
    main()
