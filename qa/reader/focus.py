"""What of each passage the reader reads: a window of whole sentences around those that match
the question.

A passage is about 800 characters (five sentences, ~180 tokens); the answer to a news question
is nearly always in the sentence that shares the question's rarest words, or next to it (Min et
al., ACL 2018: 92% of answerable SQuAD questions need one sentence). Reading a window of
`max_chars` around that sentence instead of the whole passage reads about half the tokens. The
window is a (start, end) pair of character offsets into the passage, so answers found in it
keep their exact place in the article.

Words are weighed by how rare they are among the sentences of all the passages read for the
question (inverse sentence frequency): the topic words that every retrieved passage shares say
nothing about where in a passage the answer is. A question word matches a sentence word that
shares its first PREFIX characters ("expire" finds "expires", "expiring"). Cost: O(characters
of the passages read), a few hundred microseconds for 10 passages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from qa.index.words import tokenize
from qa.ingest.chunking import sentence_spans

PREFIX = 5  # characters of a word that must agree: a crude stem, enough for English inflections


def _stems(text: str) -> set[str]:
    return {w[:PREFIX] for w in tokenize(text)}


def _grow(spans: list[tuple[int, int]], scores: list[float], best: int, max_chars: int) -> tuple[int, int]:
    """Sentences best-1, best+1, ... added around `best` while the window fits in `max_chars`,
    the better-scoring neighbour first (ties: the next one, where the answer more often is)."""
    lo = hi = best
    while True:
        options = [i for i in (lo - 1, hi + 1) if 0 <= i < len(spans)]
        options = [i for i in options if spans[max(i, hi)][1] - spans[min(i, lo)][0] <= max_chars]
        if not options:
            return spans[lo][0], spans[hi][1]
        pick = max(options, key=lambda i: (scores[i], i > hi))
        lo, hi = min(lo, pick), max(hi, pick)


def focus_windows(question: str, passages: Sequence[str], max_chars: int) -> list[tuple[int, int]]:
    """For each passage, the (start, end) of the window to read: the whole passage when it fits
    in `max_chars` (or `max_chars` is 0), else whole sentences around the one that shares the
    most (rarity-weighted) question words. A single sentence longer than `max_chars` is read
    whole: a window never cuts a sentence."""
    if max_chars <= 0:
        return [(0, len(p)) for p in passages]
    wanted = _stems(question)
    sentences = [sentence_spans(p) if len(p) > max_chars else [] for p in passages]
    words = [[_stems(p[s:e]) & wanted for s, e in spans] for p, spans in zip(passages, sentences, strict=True)]
    n = sum(len(w) for w in words) or 1
    df: dict[str, int] = {}
    for passage_words in words:
        for sentence in passage_words:
            for w in sentence:
                df[w] = df.get(w, 0) + 1
    weight = {w: math.log(1 + n / c) for w, c in df.items()}
    windows = []
    for passage, spans, passage_words in zip(passages, sentences, words, strict=True):
        if not spans:
            windows.append((0, len(passage)))
            continue
        scores = [sum(weight[w] for w in sentence) for sentence in passage_words]
        best = max(range(len(spans)), key=lambda i: (scores[i], -i))
        windows.append(_grow(spans, scores, best, max_chars))
    return windows
