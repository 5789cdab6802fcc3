"""Turn reader spans over retrieved chunks into ranked, de-duplicated answers, or no answer."""

from __future__ import annotations

from collections.abc import Sequence

from qa.answer.boundaries import trim
from qa.answer.normalize import normalize_answer
from qa.reader.extractive import ReaderSpan
from qa.types import Answer, Article, Hit


def assemble(
    spans: Sequence[ReaderSpan],
    hits: Sequence[Hit],
    articles: dict[str, Article],
    top_k: int,
    threshold: float,
    rank_discount: float = 0.0,
) -> tuple[list[Answer], bool]:
    """`rank_answers`, cut at the no-answer threshold by `above_threshold`."""
    return above_threshold(rank_answers(spans, hits, articles, top_k, rank_discount), threshold)


def above_threshold(ranked: list[Answer], threshold: float) -> tuple[list[Answer], bool]:
    """The answers that reach the threshold, and whether that leaves none (then: no answer)."""
    if not ranked or ranked[0].score < threshold:
        return [], True
    return [a for a in ranked if a.score >= threshold], False


def answer_score(span: ReaderSpan, rank_discount: float) -> float:
    """The score that orders answers and meets the thresholds: the reader's probability for the
    span discounted by its passage's retrieval rank (see `rank_answers`)."""
    return span.score * (span.passage + 1) ** -rank_discount


def rank_answers(
    spans: Sequence[ReaderSpan],
    hits: Sequence[Hit],
    articles: dict[str, Article],
    top_k: int,
    rank_discount: float = 0.0,
) -> list[Answer]:
    """Answers best first. An answer's score is the reader's probability for the span times
    (retrieval rank of its passage + 1) ** -rank_discount: where two passages both look
    right to the reader, the one retrieval ranked higher is more often the one that answers
    (BERTserini fuses the two scores for the same reason). The same answer found in
    overlapping chunks, the same words found twice, or words already inside a better answer
    ("Lavrov" after "Sergey V. Lavrov") are one answer (its best score). Below the no-answer
    threshold (`above_threshold`) the result is "no answer": an honest empty list rather than a
    confident guess."""
    answers: list[Answer] = []
    seen_words: list[set[str]] = []
    seen_places: list[tuple[str, int, int]] = []
    scored = [(answer_score(span, rank_discount), span) for span in spans]
    for score, span in sorted(scored, key=lambda pair: -pair[0]):
        chunk = hits[span.passage].chunk
        article = articles[chunk.article_id]
        in_passage = trim(chunk.text, span.start, span.end)
        text = chunk.text[in_passage[0] : in_passage[1]]
        start, end = chunk.start + in_passage[0], chunk.start + in_passage[1]
        words = set((normalize_answer(text) or text.strip()).split())
        if not words or any(words <= kept for kept in seen_words):
            continue
        if any(a == article.id and start < e and s < end for a, s, e in seen_places):
            continue  # overlaps a better answer at the same place ("Lavrov" inside "Sergey V. Lavrov")
        seen_words.append(words)
        seen_places.append((article.id, start, end))
        answers.append(Answer(text, score, article, chunk.text, chunk.start, start, end))
        if len(answers) == top_k:
            break
    return answers
