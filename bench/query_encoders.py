"""Query encoders side by side: the embedder's own PyTorch path (sentence-transformers) and its
ONNX copies (`qa export-embedder`, float32 and int8) embedding questions one at a time, as
`/ask` does. For each: the time per question, how close its vectors are to PyTorch's, and
retrieval recall over the 48 SQuAD v1.1 dev articles (passages embedded by PyTorch, as the
index always is).

    python -m bench.query_encoders --squad-dev ../shared/data/squad/dev-v1.1.json [--limit N]

Both ONNX recipes are exported afresh into a temporary folder, so the figures are of this
commit's export whatever is installed. Timing interleaves the encoders question by question
(the order rotating), so that load from other processes falls on all alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.report import load_average, paired, percentile, table, write_section
from qa.config import Settings
from qa.eval.gold import GoldQuestion, load_gold
from qa.eval.metrics import best_over_golds, f1_score
from qa.eval.runner import hit_holds_answer
from qa.index.embedding import OnnxQueryEncoder, SentenceTransformerEmbedder
from qa.index.loading import embedder_dir, load_query_encoder
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline
from qa.training.embedder_export import RECIPES, export_query_encoder

GOLD = Path(__file__).resolve().parent.parent / "seeds" / "gold" / "news_gold.jsonl"
KS = (1, 5, 10)


def one_at_a_time(encoder: OnnxQueryEncoder) -> Callable[[str], np.ndarray]:
    return lambda text: encoder([text])[0]


def end_to_end(
    pipeline: QAPipeline, questions: list[GoldQuestion], vectors: dict[str, np.ndarray], every: int
) -> list[tuple[object, ...]]:
    """F1 end to end (as deployed, and without abstention) with each encoder's vectors, on one
    question in `every`: a question is read again only where its passages differ from PyTorch's
    (the same passages in the same order give the same answers)."""
    read_k, threshold = pipeline.settings.read_k, pipeline.threshold
    f1: dict[str, list[float]] = {name: [] for name in vectors}
    f1_any: dict[str, list[float]] = {name: [] for name in vectors}
    reread = dict.fromkeys(vectors, 0)
    for i in tqdm(range(0, len(questions), every), desc="end to end", unit="q"):
        q = questions[i]
        first: tuple[list[int], float, float] | None = None
        for name, v in vectors.items():
            retrieved = pipeline.retriever.retrieve(q.question, read_k, vector=v[i])
            ids = [h.chunk.id for h in retrieved.hits]
            if first is None or ids != first[0]:
                reread[name] += first is not None
                answers, _ = pipeline.answer_from_hits(q.question, retrieved, 1, threshold=0.0)
                text, score = (answers[0].text, answers[0].score) if answers else ("", 0.0)
                f = best_over_golds(f1_score, text, q.answers)
                got = (ids, f if score >= threshold else 0.0, f)
            else:
                got = first
            first = first or got
            f1[name].append(100 * got[1])
            f1_any[name].append(100 * got[2])
    base = next(iter(vectors))
    n = len(f1[base])
    return [
        (
            name,
            n,
            reread[name],
            round(float(np.mean(f1[name])), 2),
            paired(np.array(f1[name]), np.array(f1[base])),
            round(float(np.mean(f1_any[name])), 2),
        )
        for name in vectors
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad-dev", required=True)
    ap.add_argument("--limit", type=int, help="SQuAD questions for recall (default: all 10,570)")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds over the timed questions")
    ap.add_argument("--read-every", type=int, default=0, help="also F1 end to end on one question in N (0: no)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    configure_torch_threads(2)
    gold = load_gold(args.squad_dev)
    questions = gold.questions[: args.limit]
    torch_embedder = SentenceTransformerEmbedder(query_encoder="torch")
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        encoders: dict[str, Callable[[str], np.ndarray]] = {"torch": torch_embedder.encode_query}
        for recipe, file in RECIPES.items():
            onnx_file = export_query_encoder(embedder_dir(), Path(tmp) / file, recipe)
            encoders[f"onnx-{recipe}"] = one_at_a_time(load_query_encoder(onnx_file, embedder_dir(), f"onnx-{recipe}"))

        # Time per question: the news gold questions and the first 200 SQuAD ones.
        timed = [q.question for q in load_gold(GOLD).questions] + [q.question for q in gold.questions[:200]]
        for encode in encoders.values():
            encode("warm up")
        ms: dict[str, list[float]] = {name: [] for name in encoders}
        load_before = load_average()
        names = list(encoders)
        for i, text in enumerate(timed * args.rounds):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                t = time.perf_counter()
                encoders[name](text)
                ms[name].append(1000 * (time.perf_counter() - t))
        load_after = load_average()

        # Fidelity and recall: every question, each encoder's vector against the same index.
        pipeline = QAPipeline(Settings(index_dir=Path(tmp) / "index"))
        pipeline.build_from_articles(gold.articles, progress=True)
        vectors = {
            name: np.stack([encode(q.question) for q in tqdm(questions, desc=name, unit="q")])
            for name, encode in encoders.items()
        }
        read_k = pipeline.settings.read_k
        read: dict[str, list[list[int]]] = {}  # the passages /ask would read, per question
        rows = []
        for name, v in vectors.items():
            cosine = (v * vectors["torch"]).sum(axis=1)
            recall = {}
            for mode in ("dense", "hybrid"):
                found = dict.fromkeys(KS, 0)
                for q, vector in zip(questions, v, strict=True):
                    hits = pipeline.retriever.search(q.question, max(KS), mode=mode, vector=vector)
                    rank = next((i + 1 for i, h in enumerate(hits) if hit_holds_answer(h, q)), None)
                    for k in KS:
                        found[k] += rank is not None and rank <= k
                recall[mode] = [round(100 * found[k] / len(questions), 2) for k in KS]
            # What /ask retrieves: read_k passages (fused from lists that deep, so not the first
            # read_k of the deeper search above).
            read[name] = [
                [h.chunk.id for h in pipeline.retriever.search(q.question, read_k, vector=vector)]
                for q, vector in zip(questions, v, strict=True)
            ]
            same_set = sum(set(a) == set(b) for a, b in zip(read[name], read["torch"], strict=True))
            same_order = sum(a == b for a, b in zip(read[name], read["torch"], strict=True))
            rows.append(
                (
                    name,
                    round(statistics.median(ms[name]), 2),
                    percentile(ms[name], 95),
                    round(statistics.median(ms["torch"]) / statistics.median(ms[name]), 2),
                    f"{cosine.min():.5f}",
                    f"{np.percentile(cosine, 1):.5f}",
                    " / ".join(map(str, recall["dense"])),
                    " / ".join(map(str, recall["hybrid"])),
                    f"{100 * same_set / len(questions):.1f}% / {100 * same_order / len(questions):.1f}%",
                )
            )
        e2e = end_to_end(pipeline, questions, vectors, args.read_every) if args.read_every else []
        reader = pipeline.reader_backend
    header = (
        "query encoder",
        "ms p50",
        "ms p95",
        "speed vs torch",
        "cosine to torch, min",
        "cosine, 1st percentile",
        "dense R@1/5/10",
        "hybrid R@1/5/10",
        "the passages /ask reads as with torch: same set / same order",
    )
    print(json.dumps({"load": [load_before, load_after], "rows": rows, "end_to_end": e2e}))
    if not args.no_write:
        body = (
            f"{len(timed)} questions timed x {args.rounds} rounds, one question at a time (load average "
            f"{load_before} before, {load_after} after); recall and cosines over {len(questions)} SQuAD dev "
            f"questions, {len(gold.articles)} articles, passages embedded by PyTorch; /ask reads "
            f"{read_k} passages of hybrid retrieval.\n\n" + table(rows, header)
        )
        if e2e:
            body += (
                f"\n\nEnd to end, one SQuAD dev question in {args.read_every}, the {reader} reader at its "
                "calibrated threshold, each encoder's passages (read again only where they differ from "
                "PyTorch's):\n\n"
                + table(
                    e2e,
                    (
                        "query encoder",
                        "questions",
                        "read again (passages differ)",
                        "F1",
                        "F1 vs torch (95% CI)",
                        "F1 without abstention",
                    ),
                )
            )
        write_section("query_encoders", "Query encoders side by side (one question at a time)", body)


if __name__ == "__main__":
    main()
