"""Reader-only EM/F1 on SQuAD v1.1 dev: the reader is given the gold paragraph; then again
with a distractor beside it (the passage of the same article that BM25 ranks highest for the
question without holding an answer), which is what retrieval hands the reader in deployment.

    python -m bench.reader_squad --squad-dev ../shared/data/squad/dev-v1.1.json [--reader DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import time

from bench.report import table, write_section
from qa.config import Settings
from qa.eval.squad import load_squad
from qa.loading import configure_torch_threads
from qa.reader.extractive import ExtractiveReader
from qa.reader.loading import choose_span_model, load_reader_tokenizer
from qa.training.reader_training import hard_negatives, score_reader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad-dev", required=True)
    ap.add_argument("--reader", help="reader folder (default: the shipped one)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--batch", type=int, default=32, help="questions read per forward batch")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    configure_torch_threads(settings.threads)
    reader = ExtractiveReader(
        load_reader_tokenizer(args.reader), choose_span_model(settings.reader_backend, args.reader, settings.threads)
    )
    every_question = load_squad(args.squad_dev)
    questions = every_question[: args.limit]
    t0 = time.perf_counter()
    scores = score_reader(reader, questions, batch_size=args.batch, progress=True)
    elapsed = time.perf_counter() - t0
    distractors = hard_negatives(every_question)[: args.limit]
    with_distractor = score_reader(reader, questions, batch_size=args.batch, progress=True, distractors=distractors)
    n = len(questions)
    result = {
        **scores,
        "ms_per_question_batched": round(1000 * elapsed / n, 1),
        "em_with_distractor": with_distractor["em"],
        "f1_with_distractor": with_distractor["f1"],
    }
    print(json.dumps(result))
    if not args.no_write:
        state = {}
        try:
            from pathlib import Path

            from qa.reader.loading import BUNDLED_READER_DIR
            from qa.training.reader_training import STATE_FILE

            state = json.loads((Path(args.reader or BUNDLED_READER_DIR) / STATE_FILE).read_text())
        except (OSError, ValueError):
            pass
        body = table(
            [
                (
                    n,
                    result["em"],
                    result["f1"],
                    result["ms_per_question_batched"],
                    result["em_with_distractor"],
                    result["f1_with_distractor"],
                )
            ],
            ("questions", "EM", "F1", "ms/question (batched, 2 cores)", "EM with a distractor", "F1 with a distractor"),
        )
        curve = state.get("curve", [])
        if curve:
            body += "\n\nLearning curve of the shipped reader (first 300 dev questions while training; SQuAD windows "
            body += "seen, hard negatives seen beside them, F1 alone and with a distractor passage):\n\n"
            body += table(
                [
                    (p["windows_seen"], p.get("negatives_seen", 0), p["em"], p["f1"], p.get("f1_with_distractor", "-"))
                    for p in curve
                ],
                ("training windows seen", "hard negatives seen", "EM", "F1", "F1 with a distractor"),
            )
        write_section("reader_squad", "Reader only: SQuAD v1.1 dev, gold paragraph", body)


if __name__ == "__main__":
    main()
