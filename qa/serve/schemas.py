"""Request and response bodies of the HTTP API (they are also the OpenAPI docs at /docs)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, field_validator

from qa.config import MAX_QUESTION_CHARS
from qa.ingest.files import ARTICLE_ID_PATTERN, MAX_SOURCE_CHARS, MAX_TITLE_CHARS, MAX_URL_CHARS, is_web_url
from qa.pipeline import has_visible_text
from qa.retrieval.hybrid import Filters
from qa.types import Answer, Article
from qa.types import Turn as TurnRecord

HistoryQuestion = Annotated[str, Field(max_length=MAX_QUESTION_CHARS)]


def _yyyy_mm_dd(value: object) -> object:
    # pydantic's date also takes datetimes at midnight and Unix timestamps; the API says yyyy-mm-dd.
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return value  # a day that does not exist (2021-02-30) is refused by the date type after this
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise ValueError("must be a date as yyyy-mm-dd")


IsoDate = Annotated[dt.date, BeforeValidator(_yyyy_mm_dd)]

MAX_HISTORY_TURNS = 20


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskFilters(Strict):
    source: str | None = Field(None, max_length=200, description="only articles whose source contains this text")
    date_from: IsoDate | None = Field(None, description="only articles dated on or after (yyyy-mm-dd)")
    date_to: IsoDate | None = Field(None, description="only articles dated on or before (yyyy-mm-dd)")

    def to_filters(self) -> Filters:
        """Raises FilterError (a 422) for a date_from after date_to."""
        return Filters(
            source=self.source,
            date_from=self.date_from.isoformat() if self.date_from else None,
            date_to=self.date_to.isoformat() if self.date_to else None,
        )


class Turn(Strict):
    question: str = Field(..., max_length=MAX_QUESTION_CHARS)
    answer: str | None = Field(None, max_length=MAX_QUESTION_CHARS)


class AskRequest(Strict):
    question: str = Field(
        ...,
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        description=f"the question, 1 to {MAX_QUESTION_CHARS} characters",
        examples=["When does New START expire?"],
    )
    top_k: StrictInt | None = Field(
        None, ge=1, le=20, description="how many answers to return (1-20; default: the server's QA_TOP_K, 3 unless set)"
    )
    filters: AskFilters | None = None
    history: list[HistoryQuestion | Turn] = Field(
        default_factory=list,
        max_length=MAX_HISTORY_TURNS,
        description="earlier turns of the chat, oldest first: questions, or {question, answer} (the answer "
        "given helps a follow-up: 'When was he born?' after 'Who is ...?' searches with the name)",
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not has_visible_text(value):
            raise ValueError("question must not be empty, whitespace or invisible characters only")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("question is not valid Unicode text") from None
        return value

    def history_turns(self) -> list[TurnRecord]:
        return [TurnRecord(t) if isinstance(t, str) else TurnRecord(t.question, t.answer) for t in self.history]


class ArticleOut(BaseModel):
    id: str
    title: str
    date: str | None
    source: str | None
    url: str | None

    @classmethod
    def from_article(cls, a: Article) -> ArticleOut:
        # An http(s) url only, even from an index written before ingest refused the others.
        return cls(
            id=a.id, title=a.title, date=a.date, source=a.source, url=a.url if a.url and is_web_url(a.url) else None
        )


class ArticlePage(BaseModel):
    articles: list[ArticleOut]
    total: int = Field(..., description="articles in the index")
    offset: int
    limit: int


class ArticleFull(ArticleOut):
    text: str

    @classmethod
    def from_article(cls, a: Article) -> ArticleFull:
        return cls(**ArticleOut.from_article(a).model_dump(), text=a.text)


class AnswerOut(BaseModel):
    text: str = Field(..., description="the answer, word for word from the article")
    score: float = Field(
        ...,
        description="ranking score (0-1): the reader's probability for the span, discounted "
        "by the retrieval rank of its passage; answers below the no-answer threshold are dropped",
    )
    confidence: float | None = Field(
        None,
        description="share (0-1) of answers with this score that were right when "
        "the reader was calibrated on SQuAD dev; null if not calibrated",
    )
    article: ArticleOut
    passage: str = Field(..., description="the passage the answer was read from")
    passage_start: int = Field(..., description="where the passage starts in the article text")
    start: int = Field(..., description="answer start, a character offset into the article text")
    end: int = Field(..., description="answer end (exclusive): article.text[start:end] == text")

    @classmethod
    def from_answer(cls, a: Answer) -> AnswerOut:
        return cls(
            text=a.text,
            score=round(a.score, 4),
            confidence=None if a.confidence is None else round(a.confidence, 3),
            article=ArticleOut.from_article(a.article),
            passage=a.passage,
            passage_start=a.passage_start,
            start=a.start,
            end=a.end,
        )


class PeriodOut(BaseModel):
    date_from: str | None
    date_to: str | None
    phrase: str = Field(..., description="the words of the question that named the period")
    filtered: bool = Field(
        False,
        description='true: only articles dated in the period (or undated) were searched ("as of"); '
        "false: answers from articles dated in it come first",
    )


class AskResponse(BaseModel):
    question: str
    answers: list[AnswerOut]
    no_answer: bool = Field(..., description="true when the articles do not answer the question")
    unsure: bool = Field(
        False,
        description="true when the best answer's confidence is below the cut the reader's "
        "calibration sets: the answers are candidates (up to 3), not one answer",
    )
    newest_first: bool = Field(
        False,
        description="true when the first answer comes from a newer article than a "
        "higher-scored one: the question asks about the present",
    )
    period: PeriodOut | None = Field(None, description="the period the question named, and how it was applied")
    message: str | None = None
    timing_ms: dict[str, float] = Field(
        ..., description="milliseconds by stage: embed, retrieve, tokenize, read, assemble, total"
    )
    reading: dict[str, int] = Field(
        default_factory=dict, description="what the reader read: passages, windows and tokens"
    )


class ArticleIn(Strict):
    id: str | None = Field(
        None,
        pattern=ARTICLE_ID_PATTERN,
        description="stable id (default: a hash of the url if given, else of the text)",
    )
    title: str | None = Field(None, max_length=MAX_TITLE_CHARS)
    text: str = Field(..., min_length=1)
    date: IsoDate | None = None
    source: str | None = Field(None, max_length=MAX_SOURCE_CHARS)
    url: str | None = Field(None, max_length=MAX_URL_CHARS, description="http:// or https:// only")


class AddArticlesRequest(Strict):
    articles: list[ArticleIn] = Field(..., min_length=1, max_length=100)


class AddArticlesResponse(BaseModel):
    ids: list[str]
    articles: int = Field(..., description="articles in the index after the addition")
    skipped: list[str] = Field(
        default_factory=list,
        description="what was not added and why (a JSONL upload's bad lines, by line number): the first 100",
    )
    skipped_count: int = Field(0, description="how many were not added (skipped lists the first 100)")


class ReplicaHealth(BaseModel):
    """What a replica's copy is (qa replica pull): the writer's seq, and how far behind it is."""

    seq: int = Field(..., description="the writer's change this copy holds")
    generation: str = Field(..., description="the writer's generation it copies")
    lag_s: float = Field(..., description="seconds since the writer was last known to be at this seq")
    max_lag_s: float | None = Field(None, description="QA_REPLICA_MAX_LAG_S: beyond it /ask answers 503")
    stale: bool = False


class Health(BaseModel):
    status: str = Field(..., description="ready, loading, error, or stale (a replica beyond QA_REPLICA_MAX_LAG_S)")
    articles: int = 0
    passages: int = 0
    reader_backend: str | None = Field(None, description="what the reader runs on (QA_READER_BACKEND or auto's choice)")
    query_encoder: str | None = Field(None, description="what embeds questions (QA_QUERY_ENCODER or auto's choice)")
    passage_embedder: str | None = Field(
        None, description="what embedded the index's passages and embeds new ones (QA_PASSAGE_EMBEDDER)"
    )
    replica: ReplicaHealth | None = Field(None, description="on a replica: its seq and lag")
    node: str | None = Field(None, description="qa serve --ray: the Ray node this replica runs on")
    detail: str | None = None
