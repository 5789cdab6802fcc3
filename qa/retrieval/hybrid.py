"""Hybrid retrieval: dense (FAISS inner product) and BM25 top-k, fused by reciprocal rank."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from qa.errors import QAError
from qa.index.lexical import BM25
from qa.index.embedding import Embedder
from qa.index.store import IndexData
from qa.types import Hit


class FilterError(QAError, ValueError):
    """A filter that cannot be applied, e.g. a date that is not a date."""


@dataclass(frozen=True)
class Filters:
    source: str | None = None  # case-insensitive substring of the article's source
    date_from: str | None = None  # inclusive, yyyy-mm-dd
    date_to: str | None = None

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


class Retriever:
    """Search one immutable index version. Build a new Retriever when the index changes."""

    def __init__(self, data: IndexData, embedder: Embedder, dense_k: int = 10, bm25_k: int = 10, rrf_k: int = 60) -> None:
        self.data = data
        self.embedder = embedder
        self.dense_k, self.bm25_k, self.rrf_k = dense_k, bm25_k, rrf_k
        self.faiss = data.faiss_index()
        self.bm25 = BM25([c.text for c in data.chunks])
        articles = [data.articles[c.article_id] for c in data.chunks]
        self._dates = np.array([a.date or "" for a in articles], dtype=object)
        self._sources = np.array([(a.source or "").lower() for a in articles], dtype=object)

    def allowed_rows(self, filters: Filters) -> np.ndarray:
        mask = np.ones(len(self.data.chunks), dtype=bool)
        if filters.source:
            needle = filters.source.lower()
            mask &= np.array([needle in s for s in self._sources], dtype=bool)
        if filters.date_from:
            mask &= np.array([d != "" and d >= filters.date_from for d in self._dates], dtype=bool)
        if filters.date_to:
            mask &= np.array([d != "" and d <= filters.date_to for d in self._dates], dtype=bool)
        return mask

    def dense(self, query: str, k: int, allowed: np.ndarray | None = None, vector: np.ndarray | None = None) -> list[tuple[int, float]]:
        import faiss

        if not self.data.chunks or k <= 0:
            return []
        vector = self.embedder.encode([query]) if vector is None else vector.reshape(1, -1)
        params = None
        if allowed is not None:
            ids = np.flatnonzero(allowed).astype(np.int64)
            if len(ids) == 0:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(ids))
        scores, rows = self.faiss.search(vector, min(k, len(self.data.chunks)), params=params)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]

    def search(
        self,
        query: str,
        k: int,
        filters: Filters | None = None,
        mode: str = "hybrid",
        vector: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[Hit]:
        """Top k chunks. mode: 'hybrid' (default), 'dense' or 'bm25' (for comparisons).
        `vector` is the query's embedding when the caller has embedded many queries at once;
        `allowed` a boolean row mask, for callers that restrict rows in other ways than filters."""
        if filters and filters.active:
            mask = self.allowed_rows(filters)
            allowed = mask if allowed is None else allowed & mask
        chunks = self.data.chunks
        if mode == "dense":
            return [Hit(chunks[r], s, dense_rank=i + 1) for i, (r, s) in enumerate(self.dense(query, k, allowed, vector))]
        if mode == "bm25":
            return [Hit(chunks[r], s, bm25_rank=i + 1) for i, (r, s) in enumerate(self.bm25.top(query, k, allowed))]
        if mode != "hybrid":
            raise ValueError(f"unknown retrieval mode {mode!r}")
        dense = [r for r, _ in self.dense(query, max(k, self.dense_k), allowed, vector)]
        sparse = [r for r, _ in self.bm25.top(query, max(k, self.bm25_k), allowed)]
        fused = rrf_fuse(dense, sparse, self.rrf_k)[:k]
        return [Hit(chunks[r], s, dense_rank=d, bm25_rank=b) for r, s, d, b in fused]
