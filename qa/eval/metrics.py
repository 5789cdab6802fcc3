"""The official SQuAD exact match and token F1 (over the answer normalisation of qa/answer/normalize.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from qa.answer.normalize import normalize_answer

__all__ = ["best_over_golds", "exact_match", "f1_score", "normalize_answer"]


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric: Callable[[str, str], float], prediction: str, golds: list[str] | tuple[str, ...]) -> float:
    """The official rule: a prediction scores its best match against any reference answer."""
    return max((metric(prediction, g) for g in golds), default=0.0)
