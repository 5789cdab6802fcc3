"""The typed records that flow between stages. All character offsets are into Article.text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    text: str
    date: str | None = None  # ISO yyyy-mm-dd when known
    source: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A passage: article.text[start:end] == text."""

    id: int  # row in the chunk store; also the FAISS id
    article_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the ranks it had in each retriever."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    bm25_rank: int | None = None


@dataclass(frozen=True)
class Answer:
    """An answer lifted from an article: article.text[start:end] == text."""

    text: str
    score: float  # orders answers and is cut by the threshold: reader probability x passage-rank discount
    article: Article
    passage: str
    passage_start: int  # where the passage starts in the article
    start: int
    end: int
    confidence: float | None = None  # how often answers scored so were right in calibration (None: not calibrated)


@dataclass(frozen=True)
class Turn:
    """An earlier turn of a conversation: the question, and the answer given when known."""

    question: str
    answer: str | None = None


@dataclass(frozen=True)
class Period:
    """A period named in the question (read by qa/retrieval/period.py): a date range, with the
    phrase that named it."""

    date_from: str | None
    date_to: str | None
    as_of: bool = False  # "as of": the state of things then, so the newest article up to it is preferred
    phrase: str = ""

    def contains(self, day: str | None) -> bool:
        """Whether an article dated `day` (yyyy-mm-dd) is dated within the period."""
        if not day:
            return False
        return (not self.date_from or day >= self.date_from) and (not self.date_to or day <= self.date_to)

    def remove_from(self, question: str) -> str:
        """The question without the period's phrase ("Who was X in 2015?" -> "Who was X?")."""
        rest = question.replace(self.phrase, " ", 1)
        rest = re.sub(r"\s+([?.!,;])", r"\1", " ".join(rest.split()))
        return re.sub(r"^[,;]\s*", "", rest).strip() or question


@dataclass(frozen=True)
class AnswerResult:
    question: str
    answers: list[Answer]
    no_answer: bool
    retrieval_query: str  # the question as sent to retrieval (follow-ups add context)
    hits: list[Hit] = field(default_factory=list)
    timing_ms: dict[str, float] = field(default_factory=dict)
    unsure: bool = False  # the best answer's calibrated confidence is below the cut: candidates, not an answer
    newest_first: bool = False  # the first answer was put first for its article's date, not its score
    period: Period | None = None  # the period read from the question: a date filter ("as of") or a preference
    best_guess: Answer | None = None  # the best span whatever its score (for evaluation; never shown)
    reading: dict[str, int] = field(default_factory=dict)  # passages, windows and tokens the reader read


# An article ready to store: its passages and their vectors, one row per passage, in order.
EmbeddedArticle = tuple[Article, Sequence[Chunk], np.ndarray]
# What one write stores, and what building an index reads in steps (qa/index/store.py).
Batch = list[EmbeddedArticle]
