"""The names settings may take for implementation choices, in one place below every stage, so
that config.py and the stages that implement them import the same Literal types from here."""

from __future__ import annotations

from typing import Literal, get_args

# How the reader's span model runs (QA_READER_BACKEND; qa/reader/backends.py, qa/reader/loading.py).
ReaderBackend = Literal["torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8", "ctranslate2-int8"]
BACKENDS: tuple[str, ...] = get_args(ReaderBackend)

# What embeds questions (QA_QUERY_ENCODER): the embedder itself, or an ONNX copy of it
# (qa/index/embedding.py, qa/index/loading.py).
QueryEncoderName = Literal["torch", "onnx-fp32", "onnx-int8"]
QUERY_ENCODERS: tuple[str, ...] = get_args(QueryEncoderName)

# What embeds passages at ingest (QA_PASSAGE_EMBEDDER): the embedder itself, or its ONNX copy in
# float32 (the same vectors) or int8 (other vectors: an index records which, qa/index/loading.py).
PassageEmbedderName = Literal["torch", "onnx-fp32", "onnx-int8"]
PASSAGE_EMBEDDERS: tuple[str, ...] = get_args(PassageEmbedderName)
