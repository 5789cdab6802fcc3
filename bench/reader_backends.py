"""The reader's backends side by side on the same questions and passages: end-to-end F1 of
the answer `/ask` would give, and the time to read one question's passages.

    python -m bench.reader_backends --squad-dev ../shared/data/squad/dev-v1.1.json \\
        [--every 16 --limit 600] [--backends torch-fp32,onnx-fp32,onnx-int8,...] [--speed-questions 100]

The 48 SQuAD v1.1 dev articles are indexed as `qa eval` indexes them (the index is kept in
--work). Each sampled question (one in --every; with an even --every only even positions of
the file, which `bench.calibrate` leaves out) is retrieved once and every backend reads the
same `read_k` passages; answers go through `QAPipeline.answer_from_hits` with the shipped rank
discount and the no-answer threshold calibrated for the backend (`bench.calibrate --backend`; a
variant not calibrated gets the float one), so F1 is `qa eval`'s end-to-end F1 on the sample.

Accuracy does not depend on machine load, so each backend's answers are kept in --work per
question and reused by later runs (a new variant costs only its own reading). Speed does: it
is timed in a separate pass over the first --speed-questions questions, every backend reading
each question in turn (the order rotating), so that load from other processes falls on all
alike; the load average is printed beside it. Besides the backends QA_READER_BACKEND accepts,
VARIANTS are int8 recipes not shipped, exported into --work first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import statistics
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.report import load_average, table, write_section
from qa.config import Settings
from qa.eval.gold import GoldQuestion, load_gold
from qa.eval.metrics import best_over_golds, exact_match, f1_score
from qa.index.embedding import SentenceTransformerEmbedder
from qa.loading import configure_torch_threads, onnx_source_digest, weights_digest
from qa.names import BACKENDS
from qa.pipeline import QAPipeline
from qa.reader.backends import FLOAT_BACKENDS, OnnxSpanModel, SpanModel
from qa.reader.extractive import BATCH_LENGTH_SLACK, ExtractiveReader
from qa.reader.loading import BUNDLED_READER_DIR, load_reader_tokenizer, load_span_model
from qa.retrieval.hybrid import Retrieved
from qa.training.reader_export import RECIPES, Quantisation, Recipe, export_onnx
from qa.types import Article

INT8 = Quantisation()
FFN_IN, FFN_OUT = r"/intermediate/dense/", r"layer\.\d+/output/dense/"  # node names of the feed-forward MatMuls
VARIANTS: dict[str, Recipe] = {
    "onnx-int8-8bit": Recipe("int8-8bit.onnx", replace(INT8, reduce_range=False)),
    "onnx-int8-per-tensor": Recipe("int8-per-tensor.onnx", replace(INT8, per_channel=False)),
    # Kept in float32: the span head; the embeddings; the fused query/key/value projections; the
    # feed-forward layers, whose inputs (a LayerNorm's output, GELU's) have a channel 15x larger
    # than the others', so that one activation scale per batch rounds the others coarsely.
    "onnx-int8-head-fp32": Recipe("int8-head-fp32.onnx", replace(INT8, exclude=("qa_outputs",))),
    "onnx-int8-emb-fp32": Recipe("int8-emb-fp32.onnx", replace(INT8, op_types=("MatMul", "Attention"))),
    "onnx-int8-qkv-fp32": Recipe("int8-qkv-fp32.onnx", replace(INT8, op_types=("MatMul", "EmbedLayerNormalization"))),
    "onnx-int8-ffn-in-fp32": Recipe("int8-ffn-in-fp32.onnx", replace(INT8, exclude=(FFN_IN,))),
    "onnx-int8-ffn-fp32": Recipe("int8-ffn-fp32.onnx", replace(INT8, exclude=(FFN_IN, FFN_OUT))),
    # Those channels kept in float32 instead (qa/training/outliers.py): none, or over 5x or 2x the
    # median (the shipped int8 recipe: over 3x).
    "onnx-int8-no-outliers": Recipe("int8-no-outliers.onnx", INT8),
    "onnx-int8-outliers5": Recipe("int8-outliers5.onnx", replace(INT8, outlier_ratio=5.0)),
    "onnx-int8-outliers2": Recipe("int8-outliers2.onnx", replace(INT8, outlier_ratio=2.0, outlier_limit=16)),
    "onnx-int8-outliers3-qkv-fp32": Recipe(
        "int8-outliers3-qkv-fp32.onnx",
        replace(INT8, op_types=("MatMul", "EmbedLayerNormalization"), outlier_ratio=3.0, outlier_limit=8),
    ),
    "onnx-int8-outliers3-emb-fp32": Recipe(
        "int8-outliers3-emb-fp32.onnx",
        replace(INT8, op_types=("MatMul", "Attention"), outlier_ratio=3.0, outlier_limit=8),
    ),
}


def span_model(name: str, work: Path, threads: int) -> tuple[SpanModel, float | None, str]:
    """The backend, the size in MB of the file it reads (None: made in memory at load), and
    what its answers depend on besides the questions (a key for the answers kept in --work)."""
    weights = weights_digest(BUNDLED_READER_DIR)
    if name in VARIANTS:
        recipe = VARIANTS[name]
        path = work / recipe.file
        if not path.exists() or onnx_source_digest(path) != weights:
            export_onnx(BUNDLED_READER_DIR, path, recipe)
        model: SpanModel = OnnxSpanModel(path, threads, name=name)
        return model, path.stat().st_size / 1e6, f"{name} {weights} {asdict(recipe)}"
    if name not in BACKENDS:
        raise SystemExit(f"unknown backend {name!r}: one of {', '.join([*BACKENDS, *VARIANTS])}")
    size, key = None, f"{name} {weights}"
    if name.startswith("onnx-"):
        recipe = RECIPES[name.removeprefix("onnx-")]
        size, key = (BUNDLED_READER_DIR / recipe.file).stat().st_size / 1e6, f"{key} {asdict(recipe)}"
    return load_span_model(name, None, threads), size, key


def retrieve_all(pipeline: QAPipeline, questions: list[GoldQuestion], folder: Path) -> list[Retrieved]:
    """Each question's `read_k` passages, kept in `folder` per question (the index in --work
    does not change between runs)."""
    settings = pipeline.settings
    key = f"{settings.read_k} {settings.dense_k} {settings.bm25_k} {settings.rrf_k} {pipeline.spec}"
    cache = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pkl"
    done: dict[str, Retrieved] = pickle.loads(cache.read_bytes()) if cache.exists() else {}
    todo = [q for q in questions if q.id not in done]
    # One torch thread for the query embedder: with two on two cores shared with other
    # processes, every small op waits for a descheduled thread (8x slower measured here).
    configure_torch_threads(1)
    for q in tqdm(todo, unit="q", desc="retrieval", disable=not todo):
        done[q.id] = pipeline.retrieve(q.question, settings.read_k)
    configure_torch_threads(settings.threads)
    # One object per article, so that pickle writes each once, not once per question.
    articles: dict[str, Article] = {}
    for r in done.values():
        r.articles.update({i: articles.setdefault(i, a) for i, a in r.articles.items()})
    folder.mkdir(exist_ok=True)
    cache.write_bytes(pickle.dumps(done))
    return [done[q.id] for q in questions]


def read_all(
    name: str, pipeline: QAPipeline, questions: list[GoldQuestion], retrieved: list[Retrieved], cache: Path
) -> list[dict]:
    """The best answer (text, score, F1 and EM had it been given) to each question, reading
    the questions not in `cache` yet and adding them there."""
    done: dict[str, dict] = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [i for i, q in enumerate(questions) if q.id not in done]
    for i in tqdm(todo, unit="q", desc=name, disable=not todo):
        q = questions[i]
        answers, _ = pipeline.answer_from_hits(q.question, retrieved[i], 1, threshold=0.0)
        text, score = (answers[0].text, answers[0].score) if answers else ("", 0.0)
        done[q.id] = {
            "text": text,
            "score": score,
            "f1": best_over_golds(f1_score, text, q.answers),
            "em": best_over_golds(exact_match, text, q.answers),
        }
        if len(done) % 50 == 0:
            cache.write_text(json.dumps(done))
    cache.write_text(json.dumps(done))
    return [done[q.id] for q in questions]


def time_reads(readers: dict[str, ExtractiveReader], work: list[tuple[str, list[str]]]) -> dict[str, list[float]]:
    """Milliseconds to read each (question, passages), every reader in turn, the order rotating."""
    names = list(readers)
    ms: dict[str, list[float]] = {n: [] for n in names}
    for i, (question, passages) in enumerate(tqdm(work, unit="q", desc="timing")):
        for n in names[i % len(names) :] + names[: i % len(names)]:
            t0 = time.perf_counter()
            readers[n].read(question, passages, n_best=10)
            ms[n].append(1000 * (time.perf_counter() - t0))
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--squad-dev", required=True)
    ap.add_argument("--every", type=int, default=16, help="one question in N (a uniform sample)")
    ap.add_argument("--limit", type=int, default=600, help="at most this many questions of the sample")
    ap.add_argument("--backends", default="torch-fp32,onnx-fp32,onnx-int8", help="the first is the reference")
    ap.add_argument("--speed-questions", type=int, default=100, help="questions timed side by side (0: no timing)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "qa-reader-backends"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    configure_torch_threads(settings.threads)
    work = Path(args.work)
    (work / "answers").mkdir(parents=True, exist_ok=True)
    names = args.backends.split(",")
    base = names[0]
    backends = {n: span_model(n, work, settings.threads) for n in names}
    tokenizer = load_reader_tokenizer()
    embedder = SentenceTransformerEmbedder()
    readers = {
        n: ExtractiveReader(
            tokenizer, m, settings.reader_max_length, settings.reader_stride, settings.max_answer_tokens
        )
        for n, (m, _, _) in backends.items()
    }
    # One index of the 48 articles, kept in --work: embedding them is the slow part of a run.
    index_settings = settings.model_copy(update={"index_dir": work / "squad-dev-index"})
    pipelines = {n: QAPipeline(index_settings, embedder, r) for n, r in readers.items()}
    gold = load_gold(args.squad_dev)
    first = pipelines[base]
    if first.store.exists():
        first.load()
    else:
        first.build_from_articles(gold.articles, progress=True)
    questions = gold.questions[:: args.every][: args.limit]
    retrieved = retrieve_all(first, questions, work / "retrieved")

    answers = {}
    for n, (_, _, key) in backends.items():
        reading = (
            f"{settings.read_k} {settings.reader_max_length} {settings.reader_stride} "
            f"{pipelines[n].calibration.rank_discount}"
        )
        # int8 answers depend on how windows are batched (one activation scale per batch); float
        # ones do not (scores within 1e-5: tests/test_reader_backends.py).
        if n not in FLOAT_BACKENDS:
            reading += f" batched by length {BATCH_LENGTH_SLACK}"
        cache = work / "answers" / f"{hashlib.sha256(f'{key} {reading}'.encode()).hexdigest()[:16]}.json"
        answers[n] = read_all(n, pipelines[n], questions, retrieved, cache)

    ms: dict[str, list[float]] = {n: [] for n in names}
    load_before = load_after = "-"
    if args.speed_questions:
        speed_work = [(q.question, [h.chunk.text for h in r.hits]) for q, r in zip(questions, retrieved, strict=True)]
        for reader in readers.values():
            reader.read(*speed_work[0])
        load_before = load_average()
        ms = time_reads(readers, speed_work[: args.speed_questions])
        load_after = load_average()

    # Each backend at the no-answer threshold calibrated for it, as deployed.
    thresholds = {n: p.threshold for n, p in pipelines.items()}
    rows, result = [], {}
    for n in names:
        a, b = answers[n], answers[base]
        threshold = thresholds[n]
        pairs = list(zip(a, b, strict=True))
        f1 = [x["f1"] if x["score"] >= threshold else 0.0 for x in a]
        f1_base = [x["f1"] if x["score"] >= thresholds[base] else 0.0 for x in b]
        r = result[n] = {
            "questions": len(a),
            "threshold": threshold,
            "f1": round(100 * statistics.mean(f1), 2),
            "f1_diff": round(100 * (statistics.mean(f1) - statistics.mean(f1_base)), 2),
            # The same questions: the spread of the per-question differences gives the error.
            "f1_diff_ci95": round(196 * float(np.std(np.subtract(f1, f1_base), ddof=1)) / np.sqrt(len(f1)), 2),
            "em": round(100 * statistics.mean(x["em"] if x["score"] >= threshold else 0.0 for x in a), 2),
            "f1_without_abstention": round(100 * statistics.mean(x["f1"] for x in a), 2),
            "answered": round(float(np.mean([x["score"] >= threshold for x in a])), 4),
            "same_top_answer": round(float(np.mean([x["text"] == y["text"] for x, y in pairs])), 4),
            "mean_abs_score_diff": round(float(np.mean([abs(x["score"] - y["score"]) for x, y in pairs])), 4),
            "file_mb": None if (size := backends[n][1]) is None else round(size, 1),
        }
        if ms[n]:
            r["read_ms_p50"] = round(statistics.median(ms[n]), 1)
            r["speed"] = round(statistics.median(ms[base]) / statistics.median(ms[n]), 2)
        rows.append(
            (
                n,
                threshold,
                r["f1"],
                f"{r['f1_diff']:+.2f} ± {r['f1_diff_ci95']:.2f}",
                r["em"],
                r["f1_without_abstention"],
                f"{100 * r['same_top_answer']:.1f}%",
                r["mean_abs_score_diff"],
                r.get("read_ms_p50", "-"),
                f"{r['speed']:.2f}x" if "speed" in r else "-",
                r["file_mb"] or "-",
            )
        )
    print(json.dumps({"load_average_before": load_before, "load_average_after": load_after, **result}))
    header = (
        "backend",
        "no-answer threshold",
        "F1 (end to end)",
        f"F1 vs {base} (95% CI)",
        "EM",
        "F1 without abstention",
        f"same top answer as {base}",
        "mean abs score diff",
        "read ms p50",
        f"speed vs {base}",
        "file MB",
    )
    print(table(rows, header))
    if not args.no_write:
        body = (
            f"{len(questions)} SQuAD v1.1 dev questions (one in {args.every}) over the 48 dev articles, "
            f"read_k={settings.read_k} passages each (hybrid retrieval, the same passages for every backend), "
            f"each backend at its calibrated no-answer threshold, {settings.threads} threads, windows batched by "
            f"length. Speed: the first {args.speed_questions} "
            f"questions, backends in turn; load average (1, 5, 15 min) before: {load_before}; "
            f"after: {load_after}.\n\n" + table(rows, header)
        )
        write_section("reader_backends", "Reader backends side by side (end to end, same passages)", body)


if __name__ == "__main__":
    main()
