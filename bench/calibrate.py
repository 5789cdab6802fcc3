"""Tune how answers are scored and cut, on data, and save it beside the reader.

    python -m bench.calibrate --squad-dev ../shared/data/squad/dev-v1.1.json [--questions 1000] \\
        [--backend torch-fp32]

The float backends (PyTorch float32 or bfloat16, ONNX float32) read alike and share the top
level of the file; an int8 backend scores answers a little lower and is calibrated on its own
(`--backend onnx-int8`), saved under "backends" (qa/answer/calibration.py).

Answerable case: a dev question asked over the 48 dev articles, as deployed (the hybrid top
`read_k` passages, then the reader). Unanswerable case: the same question with its own article
removed from the index, so the passages are on-topic-looking but cannot answer it: exactly
the confident-wrong-answer trap users complain about.

1. The rank discount (answer score = reader probability x (passage rank + 1) ** -discount)
   that gives the most right answers on the answerable case.
2. With it, the no-answer threshold that maximises the balanced accuracy: right answers given
   on the first case, abstentions on the second.
3. The reading cascade's stop score (QA_READ_FIRST passages read first, the rest only when
   no answer there scores this much): the lowest on a grid whose balanced accuracy, reading as
   the cascade does, stays within STOP_TOLERANCE of reading every passage. Each question is
   read both ways; the share that stops early is what the cascade saves.
4. The confidence curve: how often an answer with a given score was right, over both cases
   (an answer to the unanswerable case is never right), read as deployed (the cascade). This
   is what the chat page shows; below a confidence of 0.5 (wrong at least as often as right)
   an answer is shown as unsure.

The questions are drawn from the odd positions of the dev file only, so that the end-to-end
benchmark (`bench.e2e_squad --every 2`, the even positions) is measured on questions the
calibration never saw.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.report import table, write_section
from qa.answer.assemble import assemble
from qa.answer.calibration import CALIBRATION_FILE, DEFAULT_UNSURE_BELOW, fit_confidence_curve
from qa.config import Settings
from qa.eval.gold import load_gold
from qa.eval.metrics import best_over_golds, f1_score
from qa.loading import configure_torch_threads
from qa.names import BACKENDS
from qa.pipeline import QAPipeline, first_suffice
from qa.reader.backends import FLOAT_BACKENDS
from qa.reader.loading import BUNDLED_READER_DIR

DISCOUNTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
STOP_TOLERANCE = 0.0025  # balanced accuracy (0-1) the cascade may lose against reading every passage
UNSURE_METHOD = (
    "an answer is shown as unsure (with the other candidates) when its confidence on the curve is below "
    "0.5: answers scored so were wrong at least as often as right, so showing one as the answer misleads "
    "more often than it helps"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--squad-dev", required=True)
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--reader", help="reader folder (default: the shipped one); the threshold is saved there")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--backend", default="torch-fp32", choices=BACKENDS, help="the reader backend calibrated for")
    args = ap.parse_args()
    configure_torch_threads(2)
    gold = load_gold(args.squad_dev)
    odd_positions = gold.questions[1::2]
    sample = random.Random(args.seed).sample(odd_positions, min(args.questions, len(odd_positions)))
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = QAPipeline(
            Settings(
                index_dir=tmp,
                reader_path=args.reader,
                reader_backend=args.backend,
                no_answer_threshold=0.0,
                rank_discount=0.0,
            )
        )
        pipeline.build_from_articles(gold.articles, progress=True)
        retriever = pipeline.retriever
        read_k = pipeline.settings.read_k
        articles: dict = {}
        read_first = pipeline.settings.read_first
        read = []  # (question, hits, spans) with the question's article indexed, then removed
        first_read = []  # the typed spans of the first `read_first` passages alone, and of all
        for q in tqdm(sample, unit="q"):
            for own_article in (True, False):
                retrieved = retriever.retrieve(
                    q.question, read_k, exclude_article=None if own_article else q.article_id
                )
                articles.update(retrieved.articles)
                hits = retrieved.hits
                texts = [h.chunk.text for h in hits]
                spans = pipeline.reader.read(q.question, texts, n_best=10) if hits else []
                read.append((q, hits, spans))
                first = pipeline.reader.read(q.question, texts[:read_first], n_best=10) if hits and read_first else []
                first_read.append((pipeline._typed(q.question, first), pipeline._typed(q.question, spans)))

    def top_answers(discount: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scores, correct = [], []
        for q, hits, spans in read:
            answers, _ = assemble(spans, hits, articles, 1, 0.0, discount)
            scores.append(answers[0].score if answers else 0.0)
            correct.append(bool(answers) and best_over_golds(f1_score, answers[0].text, q.answers) >= 0.5)
        scores_arr, correct_arr = np.array(scores), np.array(correct)
        return scores_arr[0::2], correct_arr[0::2], scores_arr[1::2]

    by_discount = {d: top_answers(d) for d in DISCOUNTS}
    right_by_discount = {d: float(correct.mean()) for d, (_, correct, _) in by_discount.items()}
    discount = max(DISCOUNTS, key=lambda d: (round(right_by_discount[d], 3), -d))  # ties: the smaller
    pos, ok, neg = by_discount[discount]
    # Geometric: a reader trained on hard negatives puts answer-free passages' spans far below 0.01.
    grid = np.unique(np.round(np.geomspace(0.001, 0.95, 100), 3))
    rows = []
    for t in grid:
        answered_right = float(((pos >= t) & ok).mean())
        abstained = float((neg < t).mean())
        rows.append((t, answered_right, abstained, (answered_right + abstained) / 2))
    # The balanced accuracy is flat near its top (about +-1.5 points of sampling error on 1000
    # questions), so take the lowest threshold within 1 point of the best: as honest, while
    # answering more of what the articles do answer.
    top = max(r[3] for r in rows)
    best = next(r for r in rows if r[3] >= top - 0.01)
    threshold = float(best[0])

    def cascade(stop: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Top answer scores and rightness as the cascade reads with `stop` (None: all passages),
        as `top_answers` splits them, and the share of questions that stopped early."""
        scores, correct, stopped = [], [], 0
        for (q, hits, _), (first, every) in zip(read, first_read, strict=True):
            early = stop is not None and read_first > 0 and first_suffice(first, discount, stop)
            stopped += early
            answers, _ = assemble(first if early else every, hits, articles, 1, 0.0, discount)
            scores.append(answers[0].score if answers else 0.0)
            correct.append(bool(answers) and best_over_golds(f1_score, answers[0].text, q.answers) >= 0.5)
        s, c = np.array(scores), np.array(correct)
        return s[0::2], c[0::2], s[1::2], stopped / len(read)

    def balanced(stop: float | None) -> tuple[float, float]:
        """Balanced accuracy at the threshold reading as the cascade does, and the share stopped early."""
        p, right, n, stopped = cascade(stop)
        return float((((p >= threshold) & right).mean() + (n < threshold).mean()) / 2), stopped

    every_passage = balanced(None)[0]
    stop_grid = [float(x) for x in np.unique(np.round(np.geomspace(max(threshold, 0.001), 0.9, 40), 4))]
    stop_rows = [(t, *balanced(t)) for t in stop_grid]
    stop_score = next((t for t, b, _ in stop_rows if b >= every_passage - STOP_TOLERANCE), None)
    pos_d, ok_d, neg_d, _ = cascade(stop_score)
    curve = fit_confidence_curve(np.concatenate([pos_d, neg_d]), np.concatenate([ok_d, np.zeros(len(neg_d), bool)]))
    stopped_early = round(next((share for t, _, share in stop_rows if t == stop_score), 0.0), 4)
    folder = Path(args.reader) if args.reader else BUNDLED_READER_DIR
    calibration = {
        "no_answer_threshold": threshold,
        "rank_discount": discount,
        "read_k": read_k,
        "right_answers_by_rank_discount": {str(d): round(v, 4) for d, v in right_by_discount.items()},
        "method": "rank discount with the most right answers (F1>=0.5) first when the question's article is "
        "indexed; then the lowest threshold within 1 point of the best balanced accuracy: right answer "
        f"when the article is indexed, abstain when it is removed; hybrid top-{read_k} passages",
        "data": f"{len(sample)} SQuAD v1.1 dev questions from the odd positions of the file (seed {args.seed}), "
        f"reader backend {args.backend}",
        "answered_right_at_threshold": round(best[1], 4),
        "abstained_when_unanswerable": round(best[2], 4),
        "answered_right_without_threshold": round(float(ok.mean()), 4),
        "best_balanced_accuracy": round(top, 4),
        "read_first": read_first,
        "stop_score": stop_score,
        "stop_method": f"the lowest stop score whose cascade (the first {read_first} passages read alone first, the "
        f"rest when no answer there scores this much) keeps balanced accuracy within {100 * STOP_TOLERANCE} points "
        f"of reading all {read_k} passages ({100 * every_passage:.2f}), answer types weighed as deployed",
        "stopped_early": stopped_early,
        "confidence_curve": curve,
        "confidence_method": "answers of both cases, read as the cascade reads, sorted by score into 20 equal groups; "
        "each group's median score and share right (F1>=0.5), pooled where the share would fall",
        "unsure_below_confidence": DEFAULT_UNSURE_BELOW,
        "unsure_method": UNSURE_METHOD,
    }
    file = folder / CALIBRATION_FILE
    saved = json.loads(file.read_text()) if file.exists() else {}
    float_reader = args.backend in FLOAT_BACKENDS  # the float backends share the top level
    if float_reader:
        saved = {**calibration, "backends": saved.get("backends", {})}  # the int8 ones' stay
    else:
        saved.setdefault("backends", {})[args.backend] = calibration
    file.write_text(json.dumps(saved, indent=1) + "\n")
    print(json.dumps(calibration, indent=1))
    shown = sorted(set(rows[::10]) | {r for r in rows if r[0] == threshold or r[3] == top})
    body = (
        f"{calibration['data']}; {calibration['method']}.\n\n"
        + table(
            [(d, f"{100 * v:.1f}") for d, v in right_by_discount.items()],
            ("rank discount", "answerable: right answer first %"),
        )
        + f"\n\nChosen rank discount: **{discount}**. With it:\n\n"
        + table(
            [(f"{t:.3f}", f"{100 * a:.1f}", f"{100 * b:.1f}", f"{100 * c:.1f}") for t, a, b, c in shown],
            ("threshold", "answerable: right answer given %", "unanswerable: abstained %", "balanced %"),
        )
        + f"\n\nChosen threshold: **{threshold:.3f}** (saved to `{folder.name}/{CALIBRATION_FILE}` for the "
        f"{'float backends' if float_reader else args.backend + ' backend'}). "
        f"Without a threshold the reader answers every unanswerable question.\n\n"
        f"Reading cascade: the first {read_first} passages read alone, the rest only when no answer there scores "
        f"the stop score; balanced accuracy reading all {read_k}: {100 * every_passage:.1f}%.\n\n"
        + table(
            [(f"{t:.4f}", f"{100 * b:.1f}", f"{100 * share:.0f}") for t, b, share in stop_rows[::4]],
            ("stop score", "balanced %", "questions stopped early %"),
        )
        + f"\n\nChosen stop score: **{stop_score}** ({100 * stopped_early:.0f}% of questions stopped "
        "early).\n\n"
        f"Confidence shown to users (share of answers with this score that were right, both cases together; "
        f"{calibration['confidence_method']}):\n\n"
        + table([(f"{score:.3g}", f"{100 * share:.0f}") for score, share in curve], ("score", "right %"))
    )
    write_section(
        "calibration" if float_reader else f"calibration-{args.backend}",
        "Answer scoring: rank discount and no-answer threshold (tuned on SQuAD dev)"
        + ("" if float_reader else f", {args.backend} reader"),
        body,
    )


if __name__ == "__main__":
    main()
