"""Small stand-ins for the models, for the fast unit tier."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from qa.reader.extractive import ReaderSpan


class FakeEmbedder:
    """Bag of hashed words, L2-normalised: texts sharing words are close. Counts what it embeds."""

    name = "fake-embedder"
    dim = 64

    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


class FakeReader:
    """Answers with the first number in each passage (score 0.9, less 0.01 a rank), or nothing."""

    def read(self, question: str, passages: Sequence[str], n_best: int = 5) -> list[ReaderSpan]:
        spans = []
        for i, text in enumerate(passages):
            m = re.search(r"\b\d{4}\b", text)
            if m:
                spans.append(ReaderSpan(i, m.start(), m.end(), m.group(), 0.9 - 0.01 * i))
        return spans[:n_best]

    def read_many(
        self, questions: Sequence[str], passages: Sequence[str], n_best: int = 5, groups: Sequence[int] | None = None
    ) -> list[list[ReaderSpan]]:
        """Each passage alone: its first number at 0.9."""
        return [
            [ReaderSpan(i, s.start, s.end, s.text, 0.9) for s in self.read(q, [p], n_best)]
            for i, (q, p) in enumerate(zip(questions, passages, strict=True))
        ]
