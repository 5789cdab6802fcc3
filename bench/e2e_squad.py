"""End to end over the 48 SQuAD v1.1 dev articles: every question retrieved and read, as `qa eval`.

    python -m bench.e2e_squad --squad-dev ../shared/data/squad/dev-v1.1.json [--limit N]

Besides all the questions, the table has a row for the even positions of the file alone:
`bench.calibrate` tunes the answer scoring on odd positions, so those are held out from it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.report import table, write_section
from qa.config import Settings
from qa.eval.gold import load_gold
from qa.eval.runner import eval_pipeline, evaluate, summarise, write_report
from qa.loading import configure_torch_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad-dev", required=True)
    ap.add_argument("--limit", type=int)
    ap.add_argument(
        "--every", type=int, default=1, help="only every Nth question (a uniform sample, for a short budget)"
    )
    ap.add_argument("--out", default="eval-out/squad-dev")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    configure_torch_threads(settings.threads)
    gold = load_gold(args.squad_dev)
    gold.questions = gold.questions[:: args.every]
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = eval_pipeline(settings, gold, None, Path(tmp))
        results, summary = evaluate(pipeline, gold, k=10, limit=args.limit)
    write_report(Path(args.out), results, summary)
    print(json.dumps(summary))
    if not args.no_write:
        keys = [
            "questions",
            "exact_match",
            "f1",
            "answerable_f1_without_abstention",
            "recall@1",
            "recall@5",
            "recall@10",
            "mrr@10",
            "no_answer_rate_on_answerable",
            "latency_ms_p50",
            "latency_ms_p95",
        ]
        body = ""
        rows = [("all" if args.every == 1 else f"one in {args.every}", *(summary.get(k) for k in keys))]
        if args.every > 1:
            body = (
                f"A uniform sample: one question in {args.every} "
                f"(positions 0, {args.every}, {2 * args.every}, ... of the file).\n\n"
            )
        elif len(results) > 1:
            held_out = summarise(results[::2], k=summary["top_k"])
            rows.append(("even positions (held out from calibration)", *(held_out.get(k) for k in keys)))
        body += table(rows, ("questions of the file", *keys))
        body += f"\n\nWhere the misses come from: {summary['misses']} (read_k={summary['read_k']} passages, "
        body += (
            f"no-answer threshold {summary['no_answer_threshold']}; per-question CSV in `{args.out}/questions.csv`)."
        )
        write_section("e2e_squad", "End to end: all SQuAD v1.1 dev questions over the 48 dev articles", body)


if __name__ == "__main__":
    main()
