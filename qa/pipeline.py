"""QAPipeline: the one object the CLI and the web layer talk to.

It owns the index store (SQLite + FAISS, changed one write at a time, every question reading one
consistent version), the retriever over it, and the reader. Writes never make questions wait:
a write embeds its passages in small batches, stepping aside while questions are being
answered, and holds the index only for its own SQLite transaction.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qa.answer.answer_type import PENALTY as TYPE_PENALTY
from qa.answer.answer_type import agrees, wanted_type
from qa.answer.assemble import above_threshold, answer_score, rank_answers
from qa.answer.boundaries import split_joined_names
from qa.answer.calibration import Calibration, load_calibration
from qa.answer.recency import asks_about_present, in_period_first, newest_first
from qa.config import MAX_QUESTION_CHARS, Settings
from qa.errors import QAError
from qa.index.dense import DenseSettings
from qa.index.embedding import Embedder, SentenceTransformerEmbedder
from qa.index.legacy import read_version
from qa.index.store import IndexSpec, IndexStore
from qa.ingest.chunking import Chunker
from qa.ingest.files import IngestReport, ingest_paths
from qa.reader.batching import MicroBatcher
from qa.reader.extractive import ExtractiveReader, Reader, ReaderSpan, ReadingCost
from qa.reader.focus import focus_windows
from qa.reader.loading import choose_span_model, load_reader_tokenizer
from qa.retrieval.followup import conversation_article, is_follow_up, with_topic
from qa.retrieval.hybrid import Filters, Retrieved, Retriever
from qa.retrieval.period import period_in
from qa.types import Answer, AnswerResult, Article, Batch, Chunk, Hit, Period, Turn

log = logging.getLogger(__name__)

EMBED_BATCH = 16  # passages embedded between two looks at whether questions are waiting
UNSURE_CANDIDATES = 3  # answers shown when the best one is unsure, whatever top_k asked for
YIELD_MAX_S = 1.0  # the longest a write steps aside per batch, so a stream of questions cannot starve it


class ArticleNotFoundError(QAError, KeyError):
    pass


class QuestionError(QAError, ValueError):
    """A question that cannot be asked (empty, too long)."""


# Letters and symbols that are drawn as nothing: the Hangul fillers (Unicode's Default_Ignorable
# letters, which unicodedata cannot list) and the blank braille pattern.
BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_visible_text(text: str) -> bool:
    """Whether text has a character other than whitespace, controls and format characters
    (NUL, zero-width space or joiner, BOM), combining marks (nothing to mark without a base
    character) and blank letters (Hangul fillers, the blank braille pattern): a question of
    only those is an empty question."""
    return any(unicodedata.category(ch)[0] not in "CZM" and ch not in BLANK_CHARACTERS for ch in text)


@dataclass(frozen=True)
class IndexCounts:
    articles: int
    passages: int


def _last_of_each_id(articles: Sequence[Article]) -> list[Article]:
    """One article per id (the last given wins), in first-seen order."""
    return list({a.id: a for a in articles}.values())


def embedded_batch(articles: Sequence[Article], chunks: dict[str, list[Chunk]], vectors: np.ndarray) -> Batch:
    """(article, its passages, their vectors) for each article, for `add_embedded`; `vectors`
    holds the passages of `articles` in that order, article by article."""
    batch: Batch = []
    at = 0
    for a in articles:
        n = len(chunks[a.id])
        batch.append((a, chunks[a.id], vectors[at : at + n]))
        at += n
    return batch


@dataclass(frozen=True)
class Asking:
    """A question as it is asked in its context (`QAPipeline._question_in_context`)."""

    asked: str  # the question without its period
    query: str  # what retrieval searches for (a follow-up with its conversation's topic)
    filters: Filters | None
    period: Period | None
    follow_up: bool
    conversation: str | None  # the article a follow-up's conversation is about


@dataclass(frozen=True)
class Reading:
    """What reading the passages gave (`QAPipeline._read`) and what it cost."""

    answers: list[Answer]
    no_answer: bool
    best_guess: Answer | None
    cost: ReadingCost | None  # None for a reader that does not count (the fast tests' stand-in)
    assembly_started: float  # perf_counter when the spans were read and answers began to be assembled

    def timing(self, embed: float, retrieve: float, total: float, read_end: float) -> dict[str, float]:
        """Milliseconds by stage (seconds in): the reader's tokenising and forward passes, wherever
        they happened, count as tokenize and read; what is left after reading as assemble."""
        tokenize = self.cost.tokenize_ms if self.cost else 0.0
        model = self.cost.model_ms if self.cost else 0.0
        total_ms = 1000 * total
        assemble = max(0.0, 1000 * (read_end - self.assembly_started) - (tokenize + model))
        read = total_ms - 1000 * (embed + retrieve) - assemble - tokenize
        return {
            name: round(ms, 2)
            for name, ms in (
                ("embed", 1000 * embed),
                ("retrieve", 1000 * retrieve),
                ("tokenize", tokenize),
                ("read", read),
                ("assemble", assemble),
                ("total", total_ms),
            )
        }

    def reading(self) -> dict[str, int]:
        """How much the reader read: passages, windows and tokens (empty when not counted)."""
        c = self.cost
        return {"passages": c.passages, "windows": c.windows, "tokens": c.tokens} if c else {}


def first_suffice(spans: Sequence[ReaderSpan], rank_discount: float, stop: float) -> bool:
    """Whether the reading cascade may stop at the first passages: an answer among their spans
    (read under one softmax over those passages alone) scores at least `stop`."""
    return any(answer_score(s, rank_discount) >= stop for s in spans)


class QAPipeline:
    def __init__(self, settings: Settings, embedder: Embedder | None = None, reader: Reader | None = None) -> None:
        self.settings = settings
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(
            str(settings.embedder_path) if settings.embedder_path else None,
            settings.query_encoder,
            settings.threads,
            settings.passage_embedder,
        )
        self._reader = reader
        self.chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
        self.spec = IndexSpec(self.embedder.name, self.embedder.dim, settings.chunk_size, settings.chunk_overlap)
        self.store = IndexStore(
            settings.index_dir,
            self.spec,
            DenseSettings.of(settings),
            lock_timeout_s=settings.write_lock_timeout_s,
        )
        self.retriever = Retriever(self.store, self.embedder, settings.dense_k, settings.bm25_k, settings.rrf_k)
        self._calibration: Calibration | None = None
        self._questions_in_flight = 0
        self._idle = threading.Condition()

    @property
    def calibration(self) -> Calibration:
        """How answers are scored and cut, as calibrated for the reader in use (loads it)."""
        if self._calibration is None:
            self.reader  # noqa: B018 (loads it: the calibration depends on its backend)
            self._calibration = load_calibration(self.settings, self.reader_backend)
        return self._calibration

    @property
    def reader_backend(self) -> str | None:
        """What the reader runs on (QA_READER_BACKEND, or auto's choice), once it is loaded."""
        return self._reader.model.name if isinstance(self._reader, ExtractiveReader) else None

    @property
    def query_encoder(self) -> str | None:
        """What embeds questions (QA_QUERY_ENCODER, or auto's choice)."""
        return self.embedder.query_encoder if isinstance(self.embedder, SentenceTransformerEmbedder) else None

    @property
    def passage_embedder(self) -> str | None:
        """What embeds passages (QA_PASSAGE_EMBEDDER); an index opens only under the one it was
        built with (int8) or its equal (torch, onnx-fp32)."""
        return self.embedder.passage_embedder if isinstance(self.embedder, SentenceTransformerEmbedder) else None

    @property
    def threshold(self) -> float:
        return self.calibration.no_answer_threshold

    # ---- models -------------------------------------------------------------------------
    @property
    def reader(self) -> Reader:
        if self._reader is None:
            path = str(self.settings.reader_path) if self.settings.reader_path else None
            model = choose_span_model(self.settings.reader_backend, path, self.settings.threads)
            self._reader = ExtractiveReader(
                load_reader_tokenizer(path),
                MicroBatcher(model) if self.settings.reader_micro_batch else model,
                max_length=self.settings.reader_max_length,
                stride=self.settings.reader_stride,
                max_answer_tokens=self.settings.max_answer_tokens,
            )
        return self._reader

    def warm_up(self) -> None:
        """Load the models and run them once, so the first question is not the slow one."""
        self.embedder.encode(["warm up"])
        self.embedder.encode_query("warm up")
        self.reader.read("warm up?", ["Warm up text."])

    # ---- index --------------------------------------------------------------------------
    def load(self) -> None:
        """Open the index (raises IndexNotFoundError, IndexCorruptError, IndexMismatchError,
        IndexRestoreNeededError)."""
        self.store.generation()

    def load_or_build(self, progress: bool = False) -> IngestReport | None:
        """Open the index; build it from the bundled seed articles only when the folder holds
        no index at all (never over generations that lost their CURRENT pointer); convert an
        index of the old format, keeping its articles."""
        legacy = self.store.legacy_current()
        if legacy is not None:
            log.warning(
                "index at %s is in the old format: converting %s, keeping every article", self.store.root, legacy.name
            )
            self.store.build(read_version(legacy))
            return None
        if self.store.exists() or self.store.generations():
            self.load()
            return None
        log.info("no index at %s: building it from %s", self.settings.index_dir, self.settings.seeds_dir)
        return self.build([self.settings.seeds_dir], progress=progress)

    def chunk_articles(self, articles: Sequence[Article]) -> dict[str, list[Chunk]]:
        return {a.id: self.chunker.chunk(a) for a in articles}

    def _embedded(self, articles: Sequence[Article], progress: bool, yield_to_questions: bool) -> Batch:
        """Chunk and embed, a few passages at a time; between batches, step aside while
        questions are being answered (2 cores: a write must not double their latency)."""
        chunks = self.chunk_articles(articles)
        texts = [c.text for a in articles for c in chunks[a.id]]
        # Shortest first: a batch of passages of similar lengths pads little (as `qa ingest --ray`
        # sends them); the vectors go back to the passages' own order below.
        order = np.argsort([len(t) for t in texts], kind="stable")
        texts = [texts[i] for i in order]
        parts = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), unit="passage", desc="embedding")
        for i in range(0, len(texts), EMBED_BATCH):
            if yield_to_questions:
                self._wait_for_idle()
            parts.append(self.embedder.encode(texts[i : i + EMBED_BATCH]))
            if bar is not None:
                bar.update(len(texts[i : i + EMBED_BATCH]))
        if bar is not None:
            bar.close()
        vectors = np.zeros((len(texts), self.spec.dim), np.float32)
        if parts:
            vectors[order] = np.concatenate(parts)
        return embedded_batch(articles, chunks, vectors)

    def _wait_for_idle(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._questions_in_flight == 0, timeout=YIELD_MAX_S)

    def build(self, paths: Sequence[str | Path], progress: bool = False) -> IngestReport:
        """Replace the index with the articles under `paths`."""
        report = ingest_paths(paths, self.settings.max_article_chars)
        self.build_from_articles(report.articles, progress)
        return report

    def build_from_articles(
        self, articles: Sequence[Article], progress: bool = False, batch_articles: int = 256
    ) -> None:
        """Replace the index with these articles: a new generation, current once complete."""
        articles = _last_of_each_id(articles)

        def batches() -> Iterator[Batch]:
            for i in range(0, len(articles), batch_articles):
                yield self._embedded(articles[i : i + batch_articles], progress, yield_to_questions=False)

        self.store.build(batches())

    def add_articles(self, articles: Sequence[Article], progress: bool = False, batch_articles: int = 256) -> list[str]:
        """Add (or replace, by id) articles; only their passages are embedded. Committed in
        batches of `batch_articles`, so a bulk ingest holds the index only briefly at a time."""
        articles = _last_of_each_id(articles)
        for i in range(0, len(articles), batch_articles):
            self.add_embedded(self._embedded(articles[i : i + batch_articles], progress, yield_to_questions=True))
        return [a.id for a in articles]

    def add_embedded(self, batch: Batch) -> None:
        """Commit articles whose passages were chunked by `chunk_articles` and embedded
        elsewhere (a Ray cluster): one transaction."""
        self.store.apply(batch, (), what="adding articles")

    def delete_article(self, article_id: str) -> None:
        if not self.store.apply((), [article_id], what="deleting an article"):
            raise ArticleNotFoundError(article_id)

    def counts(self) -> IndexCounts:
        return IndexCounts(*self.store.generation().counts())

    def article(self, article_id: str) -> Article | None:
        return self.store.generation().article(article_id)

    def articles(
        self, offset: int = 0, limit: int | None = None, contains: str | None = None
    ) -> tuple[list[Article], int]:
        """A page of articles newest first (all of them without `limit`), and how many match."""
        return self.store.generation().article_page(offset, limit if limit is not None else -1, contains)

    # ---- questions ----------------------------------------------------------------------
    def search(self, query: str, k: int = 5, filters: Filters | None = None, mode: str = "hybrid") -> list[Hit]:
        return self.retriever.search(query, k, filters, mode)

    def retrieve(self, query: str, k: int, filters: Filters | None = None) -> Retrieved:
        return self.retriever.retrieve(query, k, filters)

    def check_question(self, question: str) -> str:
        question = " ".join(question.split())
        if not has_visible_text(question):
            raise QuestionError("question is empty (no visible characters)")
        if len(question) > MAX_QUESTION_CHARS:
            raise QuestionError(f"question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
        return question

    def answer_from_hits(
        self,
        question: str,
        retrieved: Retrieved,
        top_k: int | None = None,
        threshold: float | None = None,
        prefer_recent: bool | None = None,
    ) -> tuple[list[Answer], bool]:
        """Read the passages retrieved and assemble answers (or no answer); `threshold`
        overrides the no-answer threshold (evaluation looks below it). `prefer_recent` (default:
        when the question is in the present tense) puts a newer article's answer first when it
        answers about as surely (qa/answer/recency.py)."""
        read = self._read(question, retrieved, top_k, threshold, prefer_recent)
        return read.answers, read.no_answer

    def _typed(self, question: str, spans: list[ReaderSpan]) -> list[ReaderSpan]:
        """Spans with joined names split, and those of the wrong type for the question scored down."""
        spans = split_joined_names(question, spans)
        kind = wanted_type(question)
        return [s if agrees(kind, s.text, question) else replace(s, score=s.score * TYPE_PENALTY) for s in spans]

    def _read_cascade(
        self, reader: Reader, question: str, texts: list[str], n_best: int, stop: float | None
    ) -> list[ReaderSpan]:
        """The best spans of `texts` (passages, best retrieved first), typed (`_typed`). With a stop
        score, the first `read_first` are read alone first, and the rest only when no answer
        there scores at least `stop` (`first_suffice`). The stop score is well above the no-answer
        threshold: "no answer" is said only after reading them all."""
        first = self.settings.read_first
        if stop is not None and 0 < first < len(texts):
            spans = self._typed(question, reader.read(question, texts[:first], n_best=n_best))
            if first_suffice(spans, self.calibration.rank_discount, stop):
                return spans
        return self._typed(question, reader.read(question, texts, n_best=n_best)) if texts else []

    def _stop_score(self, retrieved: Retrieved, recent: bool, period: Period | None) -> float | None:
        """The cascade's stop score for this question, or None to read every passage: when its
        answers are put in date order (the present, a period) and a passage the cascade would
        skip could come first (a newer article; one dated in the period, none read being so)."""
        first = self.settings.read_first
        dates = [retrieved.articles[h.chunk.article_id].date for h in retrieved.hits]
        read, unread = dates[:first], dates[first:]
        if recent:
            newest = max((d for d in read if d), default="")
            if any(d and d > newest for d in unread):
                return None
        elif period and not period.as_of:
            if not any(period.contains(d) for d in read) and any(period.contains(d) for d in unread):
                return None
        return self.calibration.stop_score

    def _read(
        self,
        question: str,
        retrieved: Retrieved,
        top_k: int | None,
        threshold: float | None,
        prefer_recent: bool | None,
        period: Period | None = None,
    ) -> Reading:
        """`answer_from_hits`, plus the best span whatever its score (what evaluation scores
        as the answer had the reader not abstained) and what reading cost."""
        top_k = top_k or self.settings.top_k
        reader = self.reader
        if isinstance(reader, ExtractiveReader):
            reader = reader.for_question()  # the passages are read once, whatever reads them again
        hits = retrieved.hits
        # With QA_FOCUS_CHARS, each passage is read in a window of whole sentences around the
        # question's words (off by default: docs/latency.md); spans go back to their place in it.
        windows = focus_windows(question, [h.chunk.text for h in hits], self.settings.focus_chars)
        read_hits = [
            replace(h, chunk=replace(h.chunk, text=h.chunk.text[s:e])) for h, (s, e) in zip(hits, windows, strict=True)
        ]
        # Read more candidates than asked for: merging duplicates removes some.
        texts = [h.chunk.text for h in read_hits]
        recent = asks_about_present(question) if prefer_recent is None else prefer_recent
        stop = self._stop_score(retrieved, recent, period)
        spans = self._read_cascade(reader, question, texts, max(10, 2 * top_k), stop)
        spans = [replace(s, start=s.start + windows[s.passage][0], end=s.end + windows[s.passage][0]) for s in spans]
        t0 = time.perf_counter()  # assembling starts (recency may read a passage the cascade skipped)
        threshold = self.threshold if threshold is None else threshold
        ranked = rank_answers(spans, hits, retrieved.articles, len(spans), self.calibration.rank_discount)
        answers, no_answer = above_threshold(ranked, threshold)
        if recent:
            answers = newest_first(reader, question, read_hits, answers, threshold)
        elif period and not period.as_of:
            answers = in_period_first(reader, question, read_hits, answers, period)
        calibrated = [replace(a, confidence=self.calibration.confidence(a.score)) for a in answers[:top_k]]
        cost = reader.cost if isinstance(reader, ExtractiveReader) else None
        return Reading(calibrated, no_answer, ranked[0] if ranked else None, cost, t0)

    def ask(
        self,
        question: str,
        top_k: int | None = None,
        filters: Filters | None = None,
        history: Sequence[str | Turn] = (),
    ) -> AnswerResult:
        """Answer a question. `history`: the earlier turns, oldest first (follow-ups are
        retrieved in their context). A period the question names ("in 2015", "as of 2019") puts
        answers from articles dated in it first, or for "as of" filters by date (undated articles
        stay), unless `filters` has dates (qa/retrieval/period.py). When the best answer is unsure
        (calibrated confidence below the cut), up to UNSURE_CANDIDATES candidates come back.
        `timing_ms` says where the time went: embed (the question's vector), retrieve, tokenize
        and read (the reader's tokeniser and forward passes), assemble, total."""
        question = self.check_question(question)
        top_k = top_k or self.settings.top_k
        with self._idle:
            self._questions_in_flight += 1
        try:
            t0 = time.perf_counter()
            asking = self._question_in_context(question, filters, history)
            t1 = time.perf_counter()
            vector = self.embedder.encode_query(asking.query)
            t2 = time.perf_counter()
            retrieved = self.retriever.retrieve(
                asking.query,
                self.settings.read_k,
                asking.filters,
                vector=vector,
                keep_article=asking.conversation,
                article_words=asking.asked,
            )
            t3 = time.perf_counter()
            prefer_recent = True if asking.period and asking.period.as_of else None
            # A follow-up is read with the conversation's topic words too: "How much did it pay for
            # it?" alone gives the reader nothing to match (news dev follow-up F1 68.5 -> 75.2).
            read_as = with_topic(asking.asked, history) if asking.follow_up else asking.asked
            read = self._read(read_as, retrieved, max(top_k, UNSURE_CANDIDATES), None, prefer_recent, asking.period)
            t4 = time.perf_counter()
        finally:
            with self._idle:
                self._questions_in_flight -= 1
                self._idle.notify_all()
        timing = read.timing(embed=t2 - t1, retrieve=(t1 - t0) + (t3 - t2), total=t4 - t0, read_end=t4)
        return self._result(question, asking, retrieved, read, top_k, timing)

    def _question_in_context(self, question: str, filters: Filters | None, history: Sequence[str | Turn]) -> Asking:
        """The question as retrieval and the reader see it: a period taken out of it (and, for
        "as of", made a date filter), a follow-up given its conversation's topic and article."""
        period = None if filters and (filters.date_from or filters.date_to) else period_in(question)
        asked = period.remove_from(question) if period else question
        if period and period.as_of:
            filters = Filters(filters.source if filters else None, None, period.date_to, undated=True)
        follow_up = bool(history) and is_follow_up(question)
        query = with_topic(question, history) if follow_up else question
        # Within the conversation's article, the follow-up's own words find the passage: the
        # topic words match the passage of the last answer, not the new one.
        conversation = conversation_article(self.retriever, history) if follow_up else None
        return Asking(asked, query, filters, period, follow_up, conversation)

    def _result(
        self,
        question: str,
        asking: Asking,
        retrieved: Retrieved,
        read: Reading,
        top_k: int,
        timing: dict[str, float],
    ) -> AnswerResult:
        answers = read.answers
        unsure = bool(answers) and self.calibration.unsure(answers[0].score)
        # By date, not score: the newest article for the present or "as of" (an "in 2015" reorder is told by `period`).
        in_period = asking.period is not None and not asking.period.as_of
        reordered = bool(answers) and answers[0].score < max(a.score for a in answers) and not in_period
        return AnswerResult(
            question,
            answers if unsure else answers[:top_k],
            read.no_answer,
            asking.query,
            retrieved.hits,
            timing,
            unsure=unsure,
            newest_first=reordered,
            period=asking.period,
            best_guess=read.best_guess,
            reading=read.reading(),
        )
