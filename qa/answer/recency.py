"""Questions about the present ("Who is the US secretary of state?") want the newest article.

News archives disagree across dates: a 2015 article names John Kerry, a 2019 one Mike Pompeo.
The reader, reading all passages under one softmax, crowns the passage that states the role
most plainly, whatever its date. So for a question in the present tense (or "as of" a date),
when an answer from a newer article is among the answers, each of the two articles is read
again on its own (one softmax per article: does this article, alone, answer the question?),
and the newer article's answer goes first if its article answers about as surely as the top
one does: at least SIMILAR_RATIO of the top article's probability.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.reader.extractive import Reader
from qa.types import Answer, Hit, Period

# A newer article counts as answering "about as surely" when its own best span has at least
# this share of the probability the top article gives its best span, each read alone.
SIMILAR_RATIO = 0.25

_PAST = frozenset("was were did had used former formerly then".split())
_PRESENT = frozenset("is are does do has have 's currently now today".split())
_WORD = re.compile(r"[a-z']+|\d{4}")


def asks_about_present(question: str) -> bool:
    """Present tense, no past marker, no year of its own: "Who is ...", "What does ... cost"."""
    words = _WORD.findall(question.lower().replace("’", "'").replace("'s ", " 's "))
    if any(w in _PAST or w.isdigit() for w in words):
        return False
    return any(w in _PRESENT for w in words)


def _best_alone(reader: Reader, question: str, hits: Sequence[Hit], article_ids: list[str]) -> dict[str, float]:
    """Each article's best span probability with its retrieved passages read on their own."""
    rows = [(h.chunk.text, article_ids.index(h.chunk.article_id)) for h in hits if h.chunk.article_id in article_ids]
    spans = reader.read_many([question] * len(rows), [t for t, _ in rows], n_best=1, groups=[g for _, g in rows])
    best = {a: 0.0 for a in article_ids}
    for (_, group), found in zip(rows, spans, strict=True):
        for span in found:
            best[article_ids[group]] = max(best[article_ids[group]], span.score)
    return best


def in_period_first(
    reader: Reader, question: str, hits: Sequence[Hit], answers: list[Answer], period: Period
) -> list[Answer]:
    """`answers` with the best one from an article dated in `period` first, when the top one's
    article is not and, each read alone, its article answers about as surely; else unchanged."""
    if not answers or period.contains(answers[0].article.date):
        return answers
    inside = next((a for a in answers[1:] if period.contains(a.article.date)), None)
    if inside is None:
        return answers
    alone = _best_alone(reader, question, hits, [answers[0].article.id, inside.article.id])
    if alone[inside.article.id] < SIMILAR_RATIO * alone[answers[0].article.id]:
        return answers
    return [inside] + [a for a in answers if a is not inside]


def newest_first(
    reader: Reader, question: str, hits: Sequence[Hit], answers: list[Answer], threshold: float
) -> list[Answer]:
    """`answers` (best first) with the newest article's answer moved to the front when it
    answers about as surely as the top one; unchanged otherwise."""
    if len(answers) < 2 or answers[0].score < threshold:
        return answers
    top = answers[0]
    newer = [
        a
        for a in answers[1:]
        if a.score >= threshold and a.article.date and (top.article.date is None or a.article.date > top.article.date)
    ]
    if not newer:
        return answers
    candidate_ids = list(dict.fromkeys([top.article.id] + [a.article.id for a in newer]))
    alone = _best_alone(reader, question, hits, candidate_ids)
    sure_enough = [a for a in newer if alone[a.article.id] >= SIMILAR_RATIO * alone[top.article.id]]
    if not sure_enough:
        return answers
    newest = max(sure_enough, key=lambda a: (a.article.date, a.score))
    return [newest] + [a for a in answers if a is not newest]
