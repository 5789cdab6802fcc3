"""Query words and an in-memory Okapi BM25.

`tokenize` gives a text's content words (for the follow-up rule and the in-memory BM25; the
persisted index, tantivy in text.py, folds the same way in lexical_backends.py): Unicode-aware
(`Erdoğan` -> `erdogan`, `São Paulo` -> `sao paulo`), case- and accent-folded, stopwords dropped.
The in-memory `BM25` serves small, throwaway corpora (one article's passages when training mines
hard negatives); absent query words score nothing, unlike BM25L."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

_TOKEN = re.compile(r"\w+")
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves s t""".split()
)


def fold(text: str) -> str:
    """Case- and accent-folded text (combining marks dropped: Erdoğan -> erdogan)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokenize(text: str) -> list[str]:
    """Content words: folded, split on non-word characters ("Obama's" -> obama, s), stopwords dropped."""
    return [t for t in _TOKEN.findall(fold(text)) if t not in STOPWORDS and t != "_"]


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
