"""Hybrid retrieval: dense (FAISS inner product) and lexical (BM25 in tantivy) top-k, fused by reciprocal rank."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from qa.errors import QAError
from qa.index.embedding import Embedder
from qa.index.store import IndexStore, ReadView
from qa.index.words import tokenize
from qa.types import Article, Hit


class FilterError(QAError, ValueError):
    """A filter that cannot be applied, e.g. a date that is not a date."""


@dataclass(frozen=True)
class Filters:
    source: str | None = None  # case-insensitive substring of the article's source
    date_from: str | None = None  # inclusive, yyyy-mm-dd
    date_to: str | None = None
    undated: bool = False  # articles without a date pass the date bounds too (a period read from a question)

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None:
                try:
                    date.fromisoformat(value)
                except (TypeError, ValueError):
                    raise FilterError(f"{name} must be a date as yyyy-mm-dd, got {value!r}") from None
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise FilterError(f"date_from {self.date_from} is after date_to {self.date_to}")

    @property
    def active(self) -> bool:
        return bool(self.source or self.date_from or self.date_to)


def rrf_fuse(dense: list[int], bm25: list[int], k: int = 60) -> list[tuple[int, float, int | None, int | None]]:
    """(row, score, dense_rank, bm25_rank) by reciprocal rank fusion, best first.

    Ties go to the better BM25 rank: on SQuAD-style questions BM25's top-1 is the stronger one.
    """
    d_rank = {r: i + 1 for i, r in enumerate(dense)}
    b_rank = {r: i + 1 for i, r in enumerate(bm25)}
    rows = set(d_rank) | set(b_rank)
    scored = []
    for r in rows:
        score = (1 / (k + d_rank[r]) if r in d_rank else 0.0) + (1 / (k + b_rank[r]) if r in b_rank else 0.0)
        scored.append((r, score, d_rank.get(r), b_rank.get(r)))
    big = 1 << 30
    scored.sort(key=lambda t: (-t[1], t[3] or big, t[2] or big, t[0]))
    return scored


@dataclass(frozen=True)
class Retrieved:
    """Hits and the articles they come from, read from one index version."""

    hits: list[Hit]
    articles: dict[str, Article]


KEEP_ARTICLE_PASSAGES = 3  # a conversation's article's passages read first (of read_k)

Ranked = list[tuple[int, float, int | None, int | None]]  # (passage, score, dense rank, BM25 rank)


def _article_first(view: ReadView, words: str, article_id: str, ranked: Ranked, k: int) -> Ranked:
    """`ranked` with the KEEP_ARTICLE_PASSAGES passages of `article_id` that share most of
    `words` first (ties: as retrieval ranked them); O(its passages)."""
    own = view.passage_ids_of(article_id)
    if not own:
        return ranked
    retrieved = {r[0]: r for r in ranked}
    wanted = set(tokenize(words))
    texts = view.passages(own)
    order = {pid: i for i, pid in enumerate([r[0] for r in ranked if r[0] in texts] + own)}
    by_words = sorted(texts, key=lambda pid: (-len(wanted & set(tokenize(texts[pid].text))), order[pid]))
    first = by_words[:KEEP_ARTICLE_PASSAGES]
    head = [retrieved.get(pid, (pid, 0.0, None, None)) for pid in first]
    return (head + [r for r in ranked if r[0] not in first])[:k]


class Retriever:
    """Hybrid search over the index store; each search reads the newest committed version.

    Cost per query, n = passages: dense O(n·d) exact or O(n·nprobe/nlist·d) with IVF, lexical
    O(postings of the query's words, pruned by block-max WAND), fusion O(k); filters add O(passages that match them)."""

    def __init__(
        self, store: IndexStore, embedder: Embedder, dense_k: int = 10, bm25_k: int = 10, rrf_k: int = 60
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.dense_k, self.bm25_k, self.rrf_k = dense_k, bm25_k, rrf_k

    def search(
        self, query: str, k: int, filters: Filters | None = None, mode: str = "hybrid", vector: np.ndarray | None = None
    ) -> list[Hit]:
        return self.retrieve(query, k, filters, mode, vector).hits

    def retrieve(
        self,
        query: str,
        k: int,
        filters: Filters | None = None,
        mode: str = "hybrid",
        vector: np.ndarray | None = None,
        exclude_article: str | None = None,
        keep_article: str | None = None,
        article_words: str | None = None,
    ) -> Retrieved:
        """Top k passages. mode: 'hybrid' (default), 'dense' or 'bm25' (for comparisons).
        `vector` is the query's embedding when the caller has embedded many queries at once.
        `exclude_article` leaves one article out (calibration asks questions whose article is
        gone): each list is fetched deeper by that article's passage count, so it stays exact.
        `keep_article` (a conversation's article) puts up to KEEP_ARTICLE_PASSAGES of its
        passages first: those sharing most words with `article_words` (default: the query)."""
        if mode not in ("hybrid", "dense", "bm25"):
            raise ValueError(f"unknown retrieval mode {mode!r}")
        if k <= 0:
            return Retrieved([], {})
        f = filters if filters and filters.active else None
        where = (f.source, f.date_from, f.date_to, f.undated) if f else None
        if mode != "bm25" and vector is None:
            vector = self.embedder.encode_query(query)
        gen = self.store.generation()
        extra = gen.passage_count_of(exclude_article) if exclude_article else 0
        dense_k, lexical_k = max(k, self.dense_k) + extra, max(k, self.bm25_k) + extra
        with gen.read(vector if mode != "bm25" else None, dense_k, where) as (view, dense):
            lexical = view.lexical(query, lexical_k) if mode != "dense" else []
            if exclude_article:
                owned = set(view.passage_ids_of(exclude_article))
                dense = [d for d in dense if d[0] not in owned][: dense_k - extra]
                lexical = [x for x in lexical if x[0] not in owned][: lexical_k - extra]
            ranked: Ranked
            if mode == "dense":
                ranked = [(pid, s, i + 1, None) for i, (pid, s) in enumerate(dense[:k])]
            elif mode == "bm25":
                ranked = [(pid, s, None, i + 1) for i, (pid, s) in enumerate(lexical[:k])]
            else:
                ranked = rrf_fuse([pid for pid, _ in dense], [pid for pid, _ in lexical], self.rrf_k)[:k]
            if keep_article:
                ranked = _article_first(view, article_words or query, keep_article, ranked, k)
            chunks = view.passages([r[0] for r in ranked])
            hits = [Hit(chunks[pid], s, dense_rank=d, bm25_rank=b) for pid, s, d, b in ranked if pid in chunks]
            articles = view.articles([h.chunk.article_id for h in hits])
        return Retrieved(hits, articles)
