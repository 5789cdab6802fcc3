"""`qa eval`: answers and retrieval scored against a gold set, with a per-question report."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qa.answer.normalize import normalize_answer
from qa.config import Settings
from qa.eval.gold import GoldQuestion, GoldSet, load_gold
from qa.eval.intervals import Scored, by_group, figures_with_intervals
from qa.eval.metrics import best_over_golds, exact_match, f1_score
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline
from qa.types import Hit

log = logging.getLogger(__name__)

RECALL_AT = (1, 5, 10)


@dataclass
class QuestionResult:
    id: str
    question: str
    prediction: str
    gold: str
    score: float
    no_answer: bool
    answerable: bool
    em: float
    f1: float
    f1_if_answered: float  # the best span's F1 had the reader not abstained
    gold_rank: int | None  # rank of the first retrieved passage holding a gold answer
    miss: str  # "", "retrieval", "reader", "abstained", "answered-unanswerable"
    latency_ms: float
    category: str = ""
    tags: str = ""  # space-separated
    answer_article: str = ""  # the article of the answer shown first
    best_score: float = 0.0  # the best span's score whatever the threshold (to tune the threshold on)
    passages_read: int = 0  # what the reader read (the cascade reads fewer when the first passages suffice)
    tokens_read: int = 0

    @property
    def groups(self) -> list[str]:
        """The groups this question's figures are also reported in: its category and tags."""
        return ([f"category:{self.category}"] if self.category else []) + [f"tag:{t}" for t in self.tags.split()]


def hit_holds_answer(hit: Hit, q: GoldQuestion, known_articles: set[str] | None = None) -> bool:
    """Gold span inside the passage when spans are known, else a gold answer string in it
    (from the gold article, when the gold names one that is in the index)."""
    chunk = hit.chunk
    if q.answer_spans and q.article_id:
        return chunk.article_id == q.article_id and any(chunk.start <= s and e <= chunk.end for s, e in q.answer_spans)
    in_index = known_articles is None or q.article_id in known_articles
    if q.article_id and in_index and chunk.article_id != q.article_id:
        return False
    text = normalize_answer(chunk.text)
    return any(normalize_answer(a) and normalize_answer(a) in text for a in q.answers)


def score_question(
    q: GoldQuestion,
    prediction: str,
    no_answer: bool,
    hits: list[Hit],
    read_k: int,
    known_articles: set[str] | None = None,
) -> tuple[float, float, int | None, str]:
    rank = (
        next((i + 1 for i, h in enumerate(hits) if hit_holds_answer(h, q, known_articles)), None) if q.answers else None
    )
    if not q.answers:  # SQuAD v2.0 convention: abstaining is the right answer
        ok = float(no_answer)
        return ok, ok, None, "" if no_answer else "answered-unanswerable"
    em = best_over_golds(exact_match, prediction, q.answers) if not no_answer else 0.0
    f1 = best_over_golds(f1_score, prediction, q.answers) if not no_answer else 0.0
    miss = ""
    if em < 1.0:
        if rank is None or rank > read_k:
            miss = "retrieval"
        elif no_answer:
            miss = "abstained"
        else:
            miss = "reader"
    return em, f1, rank, miss


def summarise(results: list[QuestionResult], k: int) -> dict:
    n = len(results)
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    pct = lambda x, d: round(100 * x / d, 2) if d else None  # noqa: E731
    summary: dict = {
        "questions": n,
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "exact_match": pct(sum(r.em for r in results), n),
        "f1": pct(sum(r.f1 for r in results), n),
        "answerable_exact_match": pct(sum(r.em for r in answerable), len(answerable)),
        "answerable_f1": pct(sum(r.f1 for r in answerable), len(answerable)),
        # What retrieval + reader reach before the no-answer threshold: the retriever's cost
        # against reader-only F1, apart from what abstaining costs.
        "answerable_f1_without_abstention": pct(sum(r.f1_if_answered for r in answerable), len(answerable)),
    }
    for at in RECALL_AT:
        if at <= k:
            summary[f"recall@{at}"] = pct(
                sum(1 for r in answerable if r.gold_rank and r.gold_rank <= at), len(answerable)
            )
    in_top_k = [r.gold_rank for r in answerable if r.gold_rank and r.gold_rank <= k]
    summary[f"mrr@{k}"] = round(sum(1 / rank for rank in in_top_k) / len(answerable), 4) if answerable else None
    predicted_none = [r for r in results if r.no_answer]
    correct_none = [r for r in predicted_none if not r.answerable]
    summary["no_answer_precision"] = pct(len(correct_none), len(predicted_none))
    summary["no_answer_recall"] = pct(len(correct_none), len(unanswerable))
    summary["no_answer_rate_on_answerable"] = pct(sum(1 for r in answerable if r.no_answer), len(answerable))
    lat = [r.latency_ms for r in results]
    summary["latency_ms_p50"] = round(float(np.percentile(lat, 50)), 1) if lat else None
    summary["latency_ms_p95"] = round(float(np.percentile(lat, 95)), 1) if lat else None
    # Tokens read: the reader's work, the same on every CPU (latency is this machine's).
    tokens = [r.tokens_read for r in results]
    summary["tokens_read_p50"] = round(float(np.percentile(tokens, 50)), 1) if tokens else None
    summary["tokens_read_mean"] = round(float(np.mean(tokens)), 1) if tokens else None
    summary["passages_read_mean"] = round(float(np.mean([r.passages_read for r in results])), 2) if results else None
    misses: dict[str, int] = {}
    for r in results:
        if r.miss:
            misses[r.miss] = misses.get(r.miss, 0) + 1
    summary["misses"] = misses
    summary["intervals"] = figures_with_intervals(scored := [_scored(r) for r in results])
    summary["groups"] = by_group(scored, [r.groups for r in results])
    return summary


def _scored(r: QuestionResult) -> Scored:
    return Scored(r.f1, r.em, r.answerable, r.no_answer)


def evaluate(
    pipeline: QAPipeline, gold: GoldSet, k: int = 10, progress: bool = True, limit: int | None = None
) -> tuple[list[QuestionResult], dict]:
    """Ask every question as a user would (`QAPipeline.ask`, the path of `/ask` and the chat
    page: period filters, follow-ups with their history, recency, the no-answer threshold and
    the unsure cut) and score the first answer shown. Recall is over the passages read, so `k`
    is capped at `read_k`."""
    from tqdm import tqdm

    questions = gold.questions[:limit] if limit else gold.questions
    read_k = pipeline.settings.read_k
    k = min(k, read_k)
    results = []
    for q in tqdm(questions, disable=not progress, unit="q", desc="eval"):
        t0 = time.perf_counter()
        asked = pipeline.ask(q.question, top_k=1, history=q.history)
        latency = 1000 * (time.perf_counter() - t0)
        no_answer = asked.no_answer or not asked.answers
        prediction = "" if no_answer else asked.answers[0].text
        best_span = prediction or (asked.best_guess.text if asked.best_guess else "")
        indexed = {q.article_id} if q.article_id and pipeline.article(q.article_id) is not None else set()
        em, f1, rank, miss = score_question(q, prediction, no_answer, asked.hits, read_k, indexed)
        f1_if_answered = best_over_golds(f1_score, best_span, q.answers) if q.answers else float(no_answer)
        shown = asked.answers[0] if asked.answers else None
        results.append(
            QuestionResult(
                q.id,
                q.question,
                prediction,
                " | ".join(q.answers),
                round(shown.score, 4) if shown else 0.0,
                no_answer,
                bool(q.answers),
                em,
                round(f1, 4),
                round(f1_if_answered, 4),
                rank,
                miss,
                round(latency, 1),
                q.category,
                " ".join(q.tags),
                shown.article.id if shown else "",
                round(asked.best_guess.score, 6) if asked.best_guess else 0.0,
                asked.reading.get("passages", 0),
                asked.reading.get("tokens", 0),
            )
        )
    summary = summarise(results, k)
    summary.update({"top_k": k, "read_k": read_k, "no_answer_threshold": pipeline.threshold})
    summary["reader_backend"] = pipeline.reader_backend
    return results, summary


def write_report(out: Path, results: list[QuestionResult], summary: dict) -> None:
    """Write summary.json and questions.csv into `out` via temporary files (never half-written)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp_csv = out / ".questions.csv.tmp"
    with open(tmp_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(QuestionResult.__dataclass_fields__))
        writer.writeheader()
        for r in results:
            writer.writerow(asdict(r))
    tmp_json = out / ".summary.json.tmp"
    tmp_json.write_text(json.dumps(summary, indent=1))
    os.replace(tmp_csv, out / "questions.csv")
    os.replace(tmp_json, out / "summary.json")


def format_table(summary: dict) -> str:
    rows = [(key, value) for key, value in summary.items() if key not in ("misses", "intervals", "groups")]
    rows += [
        (
            f"{key} 95% interval",
            "-" if summary["intervals"][f"{key}_95ci"] is None else summary["intervals"][f"{key}_95ci"],
        )
        for key in ("f1", "exact_match", "no_answer_precision", "no_answer_recall")
        if f"{key}_95ci" in summary.get("intervals", {})
    ]
    rows += [
        (f"F1 {name}", f"{g['f1']} {g['f1_95ci']} n={g['questions']}") for name, g in summary.get("groups", {}).items()
    ]
    rows += [(f"misses: {key}", value) for key, value in summary.get("misses", {}).items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {'-' if v is None else v}" for k, v in rows)


def eval_pipeline(settings: Settings, gold: GoldSet, corpus: list[str] | None, workdir: Path) -> QAPipeline:
    """The pipeline to evaluate: over a separate index of the gold file's own articles (SQuAD)
    or of --corpus, or over the user's current index (JSONL gold, no corpus)."""
    if corpus:
        pipeline = QAPipeline(settings.model_copy(update={"index_dir": workdir}))
        pipeline.build(corpus, progress=True)
        return pipeline
    if gold.articles:
        pipeline = QAPipeline(settings.model_copy(update={"index_dir": workdir}))
        pipeline.build_from_articles(gold.articles, progress=True)
        return pipeline
    pipeline = QAPipeline(settings)
    pipeline.load_or_build(progress=True)
    return pipeline


def run_eval_cli(args: argparse.Namespace, settings: Settings) -> int:
    configure_torch_threads(settings.threads)
    gold = load_gold(args.gold)  # validated whole before any work
    n = len(gold.questions)
    print(
        f"gold set: {n} questions ({sum(1 for q in gold.questions if not q.answers)} unanswerable)"
        f"{f', {len(gold.articles)} articles of its own' if gold.articles and not args.corpus else ''}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="qa-eval-index-"))
    try:
        pipeline = eval_pipeline(settings, gold, args.corpus, workdir)
        results, summary = evaluate(pipeline, gold, k=args.top_k, limit=args.limit)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary["gold"] = str(args.gold)
    out = Path(args.out)
    write_report(out, results, summary)
    print(format_table(summary))
    print(f"wrote {out / 'summary.json'} and {out / 'questions.csv'}", file=sys.stderr)
    return 0
