"""Retrieval over the 48 SQuAD v1.1 dev articles: recall@k for hybrid, dense and BM25, plus
indexing throughput against the raw encoder on the same passages.

    python -m bench.retrieval_squad --squad-dev ../shared/data/squad/dev-v1.1.json [--limit N]

A question counts as retrieved at k when one of the top k passages contains a gold answer
span at its own offsets (not merely the same words elsewhere).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from tqdm import tqdm

from bench.report import table, write_section
from qa.config import Settings
from qa.eval.gold import load_gold
from qa.eval.runner import hit_holds_answer
from qa.index.embedding import SentenceTransformerEmbedder
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline

KS = (1, 5, 10, 20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad-dev", required=True)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    configure_torch_threads(2)
    gold = load_gold(args.squad_dev)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = QAPipeline(Settings(index_dir=tmp))
        embedder = pipeline.embedder
        assert isinstance(embedder, SentenceTransformerEmbedder)  # the default: its raw encoder is timed below
        pipeline.embedder.encode(["warm up"])
        t0 = time.perf_counter()
        pipeline.build_from_articles(gold.articles, progress=True)
        index_s = time.perf_counter() - t0
        texts = [c.text for a in gold.articles for c in pipeline.chunker.chunk(a)]
        t0 = time.perf_counter()
        embedder.model.encode(texts, batch_size=64)  # the raw encoder alone
        encoder_s = time.perf_counter() - t0
        n_chunks = len(texts)

        questions = gold.questions[: args.limit]
        vectors = pipeline.embedder.encode([q.question for q in questions])
        found = {m: {k: 0 for k in KS} for m in ("hybrid", "dense", "bm25")}
        rr = {m: 0.0 for m in found}
        times: dict[str, list[float]] = {m: [] for m in found}
        for q, v in tqdm(list(zip(questions, vectors, strict=True)), unit="q"):
            for mode in found:
                t = time.perf_counter()
                hits = pipeline.retriever.search(q.question, max(KS), mode=mode, vector=v)
                times[mode].append(1000 * (time.perf_counter() - t))
                rank = next((i + 1 for i, h in enumerate(hits) if hit_holds_answer(h, q)), None)
                if rank:
                    rr[mode] += 1 / rank
                    for k in KS:
                        found[mode][k] += rank <= k
        t = time.perf_counter()
        for q in questions[:500]:
            pipeline.embedder.encode([q.question])
        embed_ms = 1000 * (time.perf_counter() - t) / min(500, len(questions))
    n = len(questions)
    rows = [
        (m, *(round(100 * found[m][k] / n, 1) for k in KS), round(rr[m] / n, 3), round(statistics.median(times[m]), 2))
        for m in found
    ]
    result = {
        "questions": n,
        "chunks": n_chunks,
        "index_s": round(index_s, 1),
        "index_chunks_per_s": round(n_chunks / index_s, 1),
        "encoder_chunks_per_s": round(n_chunks / encoder_s, 1),
        "query_embed_ms": round(embed_ms, 1),
        "recall": {r[0]: r[1:] for r in rows},
    }
    print(json.dumps(result))
    if not args.no_write:
        body = (
            f"{n} questions over {len(gold.articles)} articles = {n_chunks} passages.\n\n"
            + table(rows, ("retriever", *(f"R@{k}" for k in KS), "MRR@20", "search ms p50 (query embedded apart)"))
            + f"\n\nQuery embedding: {embed_ms:.1f} ms per question.\n\n"
            + table(
                [
                    ("qa index (chunk + embed + write)", round(index_s, 1), round(n_chunks / index_s, 1)),
                    ("raw encoder on the same passages", round(encoder_s, 1), round(n_chunks / encoder_s, 1)),
                ],
                ("indexing", "seconds", "passages/s"),
            )
            + f"\n\nRatio: indexing runs at {encoder_s / index_s:.2f}x the raw encoder's speed."
        )
        write_section("retrieval_squad", "Retrieval: 48 SQuAD v1.1 dev articles as documents", body)


if __name__ == "__main__":
    main()
