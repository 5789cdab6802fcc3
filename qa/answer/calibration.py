"""How answer scores are read: the rank discount, the no-answer threshold and the confidence
curve, tuned on data with the reader (`python -m bench.calibrate`) and saved beside it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from qa.config import Settings
from qa.reader.loading import BUNDLED_READER_DIR

log = logging.getLogger(__name__)

DEFAULT_NO_ANSWER_THRESHOLD = 0.2
# Below this confidence an answer is shown as a guess, with the other candidates beside it.
# 0.5: answers scored so were wrong at least as often as right in calibration; with a wrong
# answer shown as sure costing what a right one shown as unsure does, that is the best cut.
DEFAULT_UNSURE_BELOW = 0.5
CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """How answers are scored and cut, tuned on data with the reader (`bench.calibrate`).

    `confidence_curve` maps an answer's score to how often answers with that score were right
    in calibration: (score, share right) points, both rising. The score orders answers (the
    reader's probability discounted by passage rank) but is not itself a chance of being
    right; the curve is what a user can read as one."""

    no_answer_threshold: float
    rank_discount: float = 0.0
    confidence_curve: tuple[tuple[float, float], ...] = ()
    unsure_below: float = DEFAULT_UNSURE_BELOW  # a confidence, not a score
    # The reading cascade stops after the first passages when their best answer scores at least
    # this (read under one softmax over those passages only); None: always read them all.
    stop_score: float | None = None

    def confidence(self, score: float) -> float | None:
        """Share of calibration answers with this score that were right; None if not calibrated.
        Interpolated in log score (scores span orders of magnitude), flat past either end."""
        if not self.confidence_curve:
            return None
        scores, shares = zip(*self.confidence_curve, strict=True)
        return float(np.interp(np.log(max(score, 1e-12)), np.log(scores), shares))

    def unsure(self, score: float) -> bool:
        """Whether an answer with this score is a guess: calibrated confidence below the cut
        (never without a curve: an uncalibrated score says nothing about doubt)."""
        confidence = self.confidence(score)
        return confidence is not None and confidence < self.unsure_below


def _confidence_curve(saved: Any) -> tuple[tuple[float, float], ...]:
    """The saved curve, or () if it is missing or not (score > 0, share in [0, 1]) points, both rising.
    `saved` is whatever the JSON file holds: its shape is checked here, by trying."""
    try:
        curve = tuple((float(s), float(c)) for s, c in saved)
        ok = all(s > 0 and 0 <= c <= 1 for s, c in curve) and all(
            a[0] < b[0] and a[1] <= b[1] for a, b in pairwise(curve)
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        log.warning("ignoring a malformed confidence curve in %s: answers will carry no confidence", CALIBRATION_FILE)
        return ()
    return curve


def load_calibration(settings: Settings, backend: str | None = None) -> Calibration:
    """The calibration saved beside the reader for `backend` (the reader backend's name), with
    any override from settings. An int8 reader scores answers a little lower than the float
    ones, so it has its own threshold and confidence curve, under "backends" in the file
    (`bench.calibrate --backend`); the float backends read alike and share the top level."""
    folder = Path(settings.reader_path) if settings.reader_path else BUNDLED_READER_DIR
    try:
        saved = json.loads((folder / CALIBRATION_FILE).read_text())
        own = saved.get("backends", {}).get(backend) if backend else None
        if own is not None:
            saved = {**saved, **own}
            log.info("answer scoring calibrated for the %s reader", backend)
        tuned = Calibration(
            float(saved["no_answer_threshold"]),
            float(saved.get("rank_discount", 0.0)),
            _confidence_curve(saved.get("confidence_curve", ())),
            float(saved.get("unsure_below_confidence", DEFAULT_UNSURE_BELOW)),
            float(saved["stop_score"]) if saved.get("stop_score") is not None else None,
        )
    except (OSError, KeyError, ValueError, TypeError, AttributeError):
        log.warning(
            "no calibration for the reader in %s; no-answer threshold %.2f", folder, DEFAULT_NO_ANSWER_THRESHOLD
        )
        tuned, saved = Calibration(DEFAULT_NO_ANSWER_THRESHOLD), {}
    # One softmax spans the passages read, so scores shrink as more are read: the threshold
    # and curve hold for the number of passages they were tuned with.
    tuned_read_k = saved.get("read_k")  # `saved` is a dict here: indexing a non-dict failed above
    if tuned_read_k is not None and tuned_read_k != settings.read_k and settings.no_answer_threshold is None:
        log.warning(
            "the no-answer threshold was tuned reading %s passages, this server reads %d "
            "(QA_READ_K): abstention and confidence may be off",
            tuned_read_k,
            settings.read_k,
        )
    stop = tuned.stop_score if settings.read_stop_score is None else settings.read_stop_score
    if saved.get("read_first") not in (None, settings.read_first) and settings.read_stop_score is None:
        log.warning(
            "the reading cascade's stop score was tuned reading %s passages first, this server reads %d "
            "(QA_READ_FIRST): every passage is read",
            saved.get("read_first"),
            settings.read_first,
        )
        stop = None
    discount = tuned.rank_discount if settings.rank_discount is None else settings.rank_discount
    return Calibration(
        tuned.no_answer_threshold if settings.no_answer_threshold is None else settings.no_answer_threshold,
        discount,
        # The curve was measured on scores with the saved discount; on others it would mislead.
        tuned.confidence_curve if discount == tuned.rank_discount else (),
        tuned.unsure_below,
        stop,
    )


def fit_confidence_curve(scores: np.ndarray, right: np.ndarray, bins: int = 20) -> list[tuple[float, float]]:
    """(score, share right) points for `Calibration.confidence`: answers sorted by score into
    `bins` groups of equal size, each group's median score and share right, then made rising
    (pool adjacent violators: a neighbour pair whose shares fall is merged into one group)."""
    keep = scores > 0  # no answer at all: nothing to be confident about
    order = np.argsort(scores[keep], kind="stable")
    s, r = scores[keep][order], right[keep][order].astype(float)
    groups = [
        [float(np.median(gs)), float(gr.mean()), len(gs)]
        for gs, gr in zip(np.array_split(s, bins), np.array_split(r, bins), strict=True)
        if len(gs)
    ]
    pooled: list[list[float]] = []
    for g in groups:
        pooled.append(g)
        while len(pooled) > 1 and pooled[-2][1] >= pooled[-1][1]:
            b, a = pooled.pop(), pooled.pop()
            n = a[2] + b[2]
            pooled.append([(a[0] * a[2] + b[0] * b[2]) / n, (a[1] * a[2] + b[1] * b[2]) / n, n])
    # Pooling can leave a flat start; equal shares are allowed, equal scores are not.
    points: list[tuple[float, float]] = []
    for score, share, _ in pooled:
        if not points or score > points[-1][0]:
            # Significant digits, not decimals: the lowest scores are under 1e-6, and a score
            # rounded to 0 would make the saved curve invalid (scores must be positive).
            points.append((float(f"{score:.4g}"), round(share, 4)))
    return points
