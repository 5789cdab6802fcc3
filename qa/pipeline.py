"""QAPipeline: the one object the CLI and the web layer talk to.

It owns the index (one immutable version in memory, swapped whole on every change), the
retriever built over it, and the reader. Reads never block writes: a question sees the
version that was current when it started.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.answer.assemble import assemble
from qa.answer.calibration import load_calibration
from qa.answer.recency import asks_about_present, newest_first
from qa.ingest.chunking import Chunker
from qa.config import MAX_QUESTION_CHARS, Settings
from qa.index.embedding import Embedder, SentenceTransformerEmbedder
from qa.retrieval.followup import retrieval_query
from qa.retrieval.period import period_in
from qa.index.store import IndexData, IndexSpec, IndexStore, empty_index, with_articles, without_articles
from qa.ingest.readers import IngestReport, ingest_paths
from qa.reader.extractive import ExtractiveReader
from qa.retrieval.hybrid import Filters, Retriever
from qa.types import Answer, AnswerResult, Article, Chunk, Hit, Turn

log = logging.getLogger(__name__)

UNSURE_CANDIDATES = 3  # answers shown when the best one is unsure, whatever top_k asked for


class ArticleNotFoundError(KeyError):
    pass


class QuestionError(ValueError):
    """A question that cannot be asked (empty, too long)."""


@dataclass(frozen=True)
class _State:
    data: IndexData
    retriever: Retriever


def _last_of_each_id(articles: Sequence[Article]) -> list[Article]:
    """One article per id (the last given wins), in first-seen order."""
    return list({a.id: a for a in articles}.values())


class QAPipeline:
    def __init__(self, settings: Settings, embedder: Embedder | None = None, reader: ExtractiveReader | None = None) -> None:
        self.settings = settings
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(
            str(settings.embedder_path) if settings.embedder_path else None
        )
        self._reader = reader
        self.chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
        self.store = IndexStore(settings.index_dir)
        self.spec = IndexSpec(self.embedder.name, self.embedder.dim, settings.chunk_size, settings.chunk_overlap)
        self.calibration = load_calibration(settings)
        self._state: _State | None = None
        self._write_lock = threading.Lock()

    @property
    def threshold(self) -> float:
        return self.calibration.no_answer_threshold

    # ---- models -------------------------------------------------------------------------
    @property
    def reader(self) -> ExtractiveReader:
        if self._reader is None:
            from qa.models import fast_bf16_available, load_reader

            tokenizer, model = load_reader(str(self.settings.reader_path) if self.settings.reader_path else None)
            self._reader = ExtractiveReader(
                tokenizer,
                model,
                max_length=self.settings.reader_max_length,
                stride=self.settings.reader_stride,
                max_answer_tokens=self.settings.max_answer_tokens,
                bf16=fast_bf16_available() if self.settings.reader_bf16 is None else self.settings.reader_bf16,
            )
        return self._reader

    def warm_up(self) -> None:
        """Load both models and run them once, so the first question is not the slow one."""
        self.embedder.encode(["warm up"])
        self.reader.read("warm up?", ["Warm up text."])

    # ---- index --------------------------------------------------------------------------
    @property
    def state(self) -> _State:
        if self._state is None:
            raise RuntimeError("index not loaded: call load() or build() first")
        return self._state

    def _retriever(self, data: IndexData) -> Retriever:
        return Retriever(data, self.embedder, self.settings.dense_k, self.settings.bm25_k, self.settings.rrf_k)

    def _commit(self, data: IndexData, replace_all: bool = False) -> None:
        """Save a new version and make it the one questions see. The retriever is built first,
        so data that cannot be served is never written."""
        retriever = self._retriever(data)
        data.version = self.store.save(data, expect_current=not replace_all)
        self._state = _State(data, retriever)

    def load(self) -> None:
        """Load the index from disk (raises IndexNotFoundError, IndexCorruptError, IndexMismatchError)."""
        data = self.store.load(self.spec)
        self._state = _State(data, self._retriever(data))

    def load_or_build(self, progress: bool = False) -> IngestReport | None:
        """Load the index, or build it from the bundled seed articles when there is none."""
        if self.store.exists():
            self.load()
            return None
        log.info("no index at %s: building it from %s", self.settings.index_dir, self.settings.seeds_dir)
        return self.build([self.settings.seeds_dir], progress=progress)

    def _embed_chunks(self, articles: Sequence[Article], progress: bool) -> tuple[dict[str, list[Chunk]], np.ndarray]:
        chunks = {a.id: self.chunker.chunk(a) for a in articles}
        texts = [c.text for a in articles for c in chunks[a.id]]
        return chunks, self.embedder.encode(texts, progress=progress)

    def build(self, paths: Sequence[str | Path], progress: bool = False) -> IngestReport:
        """Replace the index with the articles under `paths`."""
        report = ingest_paths(paths, self.settings.max_article_chars)
        self.build_from_articles(report.articles, progress)
        return report

    def build_from_articles(self, articles: Sequence[Article], progress: bool = False) -> None:
        """Replace the index with these articles."""
        articles = _last_of_each_id(articles)
        with self._write_lock:
            chunks, vectors = self._embed_chunks(articles, progress)
            self._commit(with_articles(empty_index(self.spec), articles, chunks, vectors), replace_all=True)

    def add_articles(self, articles: Sequence[Article], progress: bool = False) -> list[str]:
        """Add (or replace, by id) articles; only their chunks are embedded."""
        articles = _last_of_each_id(articles)
        with self._write_lock:
            chunks, vectors = self._embed_chunks(articles, progress)
            self._commit(with_articles(self.state.data, articles, chunks, vectors))
        return [a.id for a in articles]

    def delete_article(self, article_id: str) -> None:
        with self._write_lock:
            if article_id not in self.state.data.articles:
                raise ArticleNotFoundError(article_id)
            self._commit(without_articles(self.state.data, {article_id}))

    def articles(self) -> list[Article]:
        return list(self.state.data.articles.values())

    # ---- questions ----------------------------------------------------------------------
    def search(self, query: str, k: int = 5, filters: Filters | None = None, mode: str = "hybrid") -> list[Hit]:
        return self.state.retriever.search(query, k, filters, mode)

    def check_question(self, question: str) -> str:
        question = " ".join(question.split())
        if not question:
            raise QuestionError("question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise QuestionError(f"question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
        return question

    def answer_from_hits(
        self,
        question: str,
        hits: Sequence[Hit],
        top_k: int | None = None,
        articles: dict[str, Article] | None = None,
        threshold: float | None = None,
        prefer_recent: bool | None = None,
    ) -> tuple[list[Answer], bool]:
        """Read the passages of `hits` and assemble answers (or no answer). `articles` is the
        index version the hits came from (a concurrent delete must not break this question);
        `threshold` overrides the no-answer threshold (evaluation looks below it).
        `prefer_recent` (default: when the question is in the present tense) puts a newer
        article's answer first when it answers about as surely (qa/answer/recency.py)."""
        top_k = top_k or self.settings.top_k
        # Read more candidates than asked for: merging duplicates removes some.
        spans = self.reader.read(question, [h.chunk.text for h in hits], n_best=max(10, 2 * top_k)) if hits else []
        articles = articles if articles is not None else self.state.data.articles
        threshold = self.threshold if threshold is None else threshold
        answers, no_answer = assemble(spans, hits, articles, len(spans), threshold, self.calibration.rank_discount)
        if asks_about_present(question) if prefer_recent is None else prefer_recent:
            answers = newest_first(self.reader, question, hits, answers, self.threshold)
        return [replace(a, confidence=self.calibration.confidence(a.score)) for a in answers[:top_k]], no_answer

    def ask(
        self,
        question: str,
        top_k: int | None = None,
        filters: Filters | None = None,
        history: Sequence[str | Turn] = (),
    ) -> AnswerResult:
        """Answer a question. `history`: the earlier turns, oldest first (follow-ups are
        retrieved in their context); a period the question names ("in 2015", "as of 2019")
        becomes a date filter unless `filters` has dates. When the best answer is unsure
        (calibrated confidence below the cut), up to UNSURE_CANDIDATES candidates come back."""
        question = self.check_question(question)
        top_k = top_k or self.settings.top_k
        t0 = time.perf_counter()
        state = self.state
        period = None if filters and (filters.date_from or filters.date_to) else period_in(question)
        asked = question
        if period:
            filters = Filters(filters.source if filters else None, period.date_from, period.date_to)
            asked = period.remove_from(question)
        query = retrieval_query(asked, history)
        hits = state.retriever.search(query, self.settings.read_k, filters)
        t1 = time.perf_counter()
        prefer_recent = True if period and period.as_of else None
        answers, no_answer = self.answer_from_hits(asked, hits, max(top_k, UNSURE_CANDIDATES), state.data.articles,
                                                   prefer_recent=prefer_recent)
        unsure = bool(answers) and self.calibration.unsure(answers[0].score)
        reordered = bool(answers) and answers[0].score < max(a.score for a in answers)  # by date, not score
        t2 = time.perf_counter()
        timing = {"retrieve": round(1000 * (t1 - t0), 2), "read": round(1000 * (t2 - t1), 2), "total": round(1000 * (t2 - t0), 2)}
        return AnswerResult(question, answers if unsure else answers[:top_k], no_answer, query, hits, timing,
                            unsure=unsure, newest_first=reordered, period=period)
