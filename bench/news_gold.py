"""The news gold set over the bundled articles, as `qa eval seeds/gold/news_gold.jsonl` scores it,
with the answers split at the unsure cut (calibrated confidence 0.5).

    python -m bench.news_gold
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.report import table, write_section
from qa.config import Settings
from qa.eval.gold import load_gold
from qa.eval.runner import evaluate, write_report
from qa.loading import configure_torch_threads
from qa.pipeline import QAPipeline

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "seeds" / "gold" / "news_gold.jsonl"
KEYS = [
    "questions",
    "exact_match",
    "f1",
    "answerable_f1",
    "recall@1",
    "recall@5",
    "recall@10",
    "no_answer_recall",
    "no_answer_precision",
    "latency_ms_p50",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="eval-out/news-gold")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    configure_torch_threads(settings.threads)
    gold = load_gold(GOLD)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = QAPipeline(settings.model_copy(update={"index_dir": Path(tmp)}))
        pipeline.build([settings.seeds_dir])
        t0 = time.perf_counter()
        results, summary = evaluate(pipeline, gold, k=10, progress=False)
        seconds = time.perf_counter() - t0
    load_after = os.getloadavg()
    write_report(Path(args.out), results, summary)
    calibration = pipeline.calibration
    answered = [r for r in results if not r.no_answer]
    rows = []
    for label, group in (
        ("sure", [r for r in answered if not calibration.unsure(r.score)]),
        ("unsure", [r for r in answered if calibration.unsure(r.score)]),
    ):
        right = sum(1 for r in group if r.answerable and r.f1 >= 0.5)
        wrong_unanswerable = sum(1 for r in group if not r.answerable)
        rows.append(
            (
                label,
                len(group),
                right,
                len(group) - right - wrong_unanswerable,
                wrong_unanswerable,
                f"{100 * right / len(group):.0f}" if group else "-",
            )
        )
    body = (
        f"{summary['questions']} questions ({summary['unanswerable']} not answerable from the articles) over the "
        f"164 bundled articles; hybrid top {summary['read_k']} passages read; the per-question CSV is in "
        f"`{args.out}/questions.csv`.\n\n"
        + table([tuple(summary.get(k) for k in KEYS)], KEYS)
        + f"\n\nWhere the misses come from: {summary['misses']}.\n\n"
        f"The answers given, split at the unsure cut (calibrated confidence {calibration.unsure_below}: below it "
        f"the page and the API show the best candidates as a guess, not one answer):\n\n"
        + table(rows, ("shown as", "answers", "right (F1>=0.5)", "wrong", "to an unanswerable question", "right %"))
        + f"\n\n{len(results)} questions in {seconds:.1f} s; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after."
    )
    print(body)
    if not args.no_write:
        write_section("news_gold", "News gold set over the bundled articles", body)


if __name__ == "__main__":
    main()
