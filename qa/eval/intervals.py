"""Figures with bootstrap 95% intervals, overall and per group of questions (category, tag).

A figure from a few hundred questions moves by points when other questions are drawn, so every
figure comes with the 2.5th and 97.5th percentiles of the same figure over RESAMPLES resamples of
the questions (with replacement; a fixed seed, so a report is reproducible). Two runs whose
intervals overlap cannot be told apart by this set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RESAMPLES = 1000
SEED = 0


@dataclass(frozen=True)
class Scored:
    """What the intervals need of one question's result."""

    f1: float
    em: float
    answerable: bool
    no_answer: bool


def figures(f1: np.ndarray, em: np.ndarray, answerable: np.ndarray, no_answer: np.ndarray) -> dict[str, np.ndarray]:
    """Each figure (in %) along the last axis: one value per row of resampled questions."""
    with np.errstate(invalid="ignore", divide="ignore"):
        right_none = (no_answer & ~answerable).sum(-1)
        return {
            "f1": 100 * f1.mean(-1),
            "exact_match": 100 * em.mean(-1),
            "no_answer_precision": 100 * right_none / no_answer.sum(-1),
            "no_answer_recall": 100 * right_none / (~answerable).sum(-1),
        }


def figures_with_intervals(results: Sequence[Scored], resamples: int = RESAMPLES) -> dict[str, Any]:
    """F1, EM, no-answer precision and recall (None where undefined), each with its interval."""
    if not results:
        return {"questions": 0}
    f1 = np.array([r.f1 for r in results])
    em = np.array([r.em for r in results])
    answerable = np.array([r.answerable for r in results])
    no_answer = np.array([r.no_answer for r in results])
    point = figures(f1, em, answerable, no_answer)
    rows = np.random.default_rng(SEED).integers(0, len(results), size=(resamples, len(results)))
    drawn = figures(f1[rows], em[rows], answerable[rows], no_answer[rows])
    out: dict[str, Any] = {"questions": len(results)}
    for name, value in point.items():
        if not np.isfinite(value):
            out[name], out[f"{name}_95ci"] = None, None
            continue
        finite = drawn[name][np.isfinite(drawn[name])]
        out[name] = round(float(value), 2)
        out[f"{name}_95ci"] = [round(float(np.percentile(finite, q)), 2) for q in (2.5, 97.5)]
    return out


def by_group(results: Sequence[Scored], groups: Sequence[Iterable[str]]) -> dict[str, dict[str, Any]]:
    """`figures_with_intervals` for each group name; `groups[i]` names the groups of result i."""
    members: dict[str, list[Scored]] = {}
    for result, names in zip(results, groups, strict=True):
        for name in names:
            members.setdefault(name, []).append(result)
    return {name: figures_with_intervals(members[name]) for name in sorted(members)}
