"""An in-memory Okapi BM25 for small, throwaway corpora (one article's passages when training
mines hard negatives, reader_training.py): absent query words score nothing, unlike BM25L.
The persisted index is tantivy's (qa/index/lexical_index.py)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from qa.index.words import tokenize


class BM25:
    def __init__(self, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.n = len(texts)
        lengths = np.zeros(self.n, dtype=np.float32)
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for row, text in enumerate(texts):
            counts = Counter(tokenize(text))
            lengths[row] = sum(counts.values())
            for term, tf in counts.items():
                postings[term].append((row, tf))
        avg = float(lengths.mean()) if self.n else 1.0
        norm = k1 * (1 - b + b * lengths / max(avg, 1e-9))
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, rows_tfs in postings.items():
            rows = np.fromiter((r for r, _ in rows_tfs), dtype=np.int64, count=len(rows_tfs))
            tfs = np.fromiter((t for _, t in rows_tfs), dtype=np.float32, count=len(rows_tfs))
            df = len(rows_tfs)
            idf = math.log(1 + (self.n - df + 0.5) / (df + 0.5))
            self._postings[term] = (rows, idf * tfs * (k1 + 1) / (tfs + norm[rows]))

    def scores(self, query: str) -> np.ndarray:
        out = np.zeros(self.n, dtype=np.float32)
        for term in set(tokenize(query)):
            hit = self._postings.get(term)
            if hit is not None:
                out[hit[0]] += hit[1]
        return out

    def top(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Best k (row, score) with a positive score; `allowed` is a boolean row mask."""
        s = self.scores(query)
        if allowed is not None:
            s = np.where(allowed, s, 0.0)
        k = min(k, int((s > 0).sum()))
        if k == 0:
            return []
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.lexsort((top, -s[top]))]  # score descending, then row for stable ties
        return [(int(r), float(s[r])) for r in top]
