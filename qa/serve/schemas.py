"""Request and response bodies of the HTTP API (they are also the OpenAPI docs at /docs)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from qa.config import MAX_QUESTION_CHARS
from qa.ingest.readers import ARTICLE_ID_PATTERN, MAX_SOURCE_CHARS, MAX_TITLE_CHARS, MAX_URL_CHARS
from qa.types import Turn as TurnRecord

HistoryQuestion = Annotated[str, Field(max_length=MAX_QUESTION_CHARS)]

MAX_HISTORY_TURNS = 20


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskFilters(Strict):
    source: str | None = Field(None, max_length=200, description="only articles whose source contains this text")
    date_from: dt.date | None = Field(None, description="only articles dated on or after (yyyy-mm-dd)")
    date_to: dt.date | None = Field(None, description="only articles dated on or before (yyyy-mm-dd)")


class Turn(Strict):
    question: str = Field(..., max_length=MAX_QUESTION_CHARS)
    answer: str | None = Field(None, max_length=MAX_QUESTION_CHARS)


class AskRequest(Strict):
    question: str = Field(
        ..., min_length=1, max_length=MAX_QUESTION_CHARS,
        description=f"the question, 1 to {MAX_QUESTION_CHARS} characters",
        examples=["When does New START expire?"],
    )
    top_k: StrictInt = Field(3, ge=1, le=20, description="how many answers to return (1-20)")
    filters: AskFilters | None = None
    history: list[HistoryQuestion | Turn] = Field(
        default_factory=list, max_length=MAX_HISTORY_TURNS,
        description="earlier turns of the chat, oldest first: questions, or {question, answer} (the answer "
                    "given helps a follow-up: 'When was he born?' after 'Who is ...?' searches with the name)",
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be empty or whitespace")
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


class ArticleFull(ArticleOut):
    text: str


class AnswerOut(BaseModel):
    text: str = Field(..., description="the answer, word for word from the article")
    score: float = Field(..., description="ranking score (0-1): the reader's probability for the span, discounted "
                                           "by the retrieval rank of its passage; answers below the no-answer threshold are dropped")
    confidence: float | None = Field(None, description="share (0-1) of answers with this score that were right when "
                                                       "the reader was calibrated on SQuAD dev; null if not calibrated")
    article: ArticleOut
    passage: str = Field(..., description="the passage the answer was read from")
    passage_start: int = Field(..., description="where the passage starts in the article text")
    start: int = Field(..., description="answer start, a character offset into the article text")
    end: int = Field(..., description="answer end (exclusive): article.text[start:end] == text")


class PeriodOut(BaseModel):
    date_from: str | None
    date_to: str | None
    phrase: str = Field(..., description="the words of the question that named the period")


class AskResponse(BaseModel):
    question: str
    answers: list[AnswerOut]
    no_answer: bool = Field(..., description="true when the articles do not answer the question")
    unsure: bool = Field(False, description="true when the best answer's confidence is below the cut the reader's "
                                            "calibration sets: the answers are candidates (up to 3), not one answer")
    newest_first: bool = Field(False, description="true when the first answer comes from a newer article than a "
                                                  "higher-scored one: the question asks about the present")
    period: PeriodOut | None = Field(None, description="the period the question named, applied as a date filter")
    message: str | None = None
    timing_ms: dict[str, float]


class ArticleIn(Strict):
    id: str | None = Field(None, pattern=ARTICLE_ID_PATTERN, description="stable id (default: a hash of the url if given, else of the text)")
    title: str | None = Field(None, max_length=MAX_TITLE_CHARS)
    text: str = Field(..., min_length=1)
    date: dt.date | None = None
    source: str | None = Field(None, max_length=MAX_SOURCE_CHARS)
    url: str | None = Field(None, max_length=MAX_URL_CHARS)


class AddArticlesRequest(Strict):
    articles: list[ArticleIn] = Field(..., min_length=1, max_length=100)


class AddArticlesResponse(BaseModel):
    ids: list[str]
    articles: int = Field(..., description="articles in the index after the addition")


class Health(BaseModel):
    status: str = Field(..., description="ready, loading or error")
    articles: int = 0
    passages: int = 0
    detail: str | None = None
