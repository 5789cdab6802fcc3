"""Where the reader's models come from: the weights shipped in qa/reader_model/ (or QA_READER_PATH),
their ONNX and CTranslate2 copies (made by `qa export-reader`, qa/training/reader_export.py), and
the span model QA_READER_BACKEND picks, on PyTorch, ONNX Runtime or CTranslate2. Nothing here
touches the network."""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import QAError
from qa.loading import (
    ModelNotFoundError,
    check_model_dir,
    checked_onnx_file,
    load_tokenizer,
    quiet_transformers,
    weights_digest,
)
from qa.names import BACKENDS
from qa.reader.backends import (
    CT2_DIR,
    NOT_FOR_AUTO,
    CTranslate2SpanModel,
    OnnxSpanModel,
    SpanModel,
    TorchSpanModel,
    ct2_source_digest,
    fastest,
)

if TYPE_CHECKING:  # heavy imports stay lazy: the CLI's --help must not load torch
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

BUNDLED_READER_DIR = Path(__file__).parent.parent / "reader_model"
# The ONNX copy each export recipe writes beside the weights (qa/training/reader_export.py).
ONNX_FILES: dict[str, str] = {"fp32": "model.fp32.onnx", "int8": "model.int8.onnx"}


class ReaderBackendError(QAError, ValueError):
    """QA_READER_BACKEND names no backend this build has."""


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


def load_reader_model(path: str | None = None) -> PreTrainedModel:
    """The extractive reader's PyTorch model in eval mode, float32 for CPU inference."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    quiet_transformers()
    folder = Path(path) if path else BUNDLED_READER_DIR
    check_model_dir(folder, "reader model")
    log.info("loading reader from %s (PyTorch)", folder)
    model = AutoModelForQuestionAnswering.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    return model


def onnx_reader_file(backend: str, path: str | None = None) -> Path:
    """The ONNX file of an onnx-* backend beside the reader's weights, exported from those very
    weights."""
    folder = Path(path) if path else BUNDLED_READER_DIR
    recipe = backend.removeprefix("onnx-")
    command = f"qa export-reader --recipe {recipe}" + (f" --reader {folder}" if path else "")
    return checked_onnx_file(folder / ONNX_FILES[recipe], folder, f"{backend} reader", command)


def ctranslate2_reader_dir(path: str | None = None) -> Path:
    """The CTranslate2 copy of the reader beside its weights, made from those very weights
    (ModelNotFoundError, with the command that makes it, when it is missing, stale, or the
    ctranslate2 package is not installed)."""
    folder = Path(path) if path else BUNDLED_READER_DIR
    command = "qa export-reader --recipe ct2-int8" + (f" --reader {folder}" if path else "")
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
    """The reader's span model on one backend (qa.names.BACKENDS), loaded anew."""
    if backend not in BACKENDS:
        raise ReaderBackendError(f"unknown reader backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    return _span_model(backend, path, threads, reader_copy(backend, path))


def _span_model(backend: str, path: str | None, threads: int, copy: Path | None) -> SpanModel:
    """Load a backend already checked: an exported one with its copy (from `reader_copy`)."""
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
    """`available_backends`, each with its exported copy (None for PyTorch), checked once."""
    found: dict[str, Path | None] = {}
    for backend in BACKENDS:
        if backend in NOT_FOR_AUTO or (backend == "torch-bf16" and not fast_bf16_available()):
            continue
        try:
            found[backend] = reader_copy(backend, path)
        except ModelNotFoundError as exc:
            log.info("reader backend %s not available: %s", backend, exc)
    return found


def available_backends(path: str | None = None) -> list[str]:
    """The backends `auto` may choose from on this machine (those that keep the reader's F1, see
    qa.reader.backends.NOT_FOR_AUTO): bf16 only where the CPU runs it natively, onnx-* only when
    their file is there, exported from the weights in use."""
    return list(_available(path))


@lru_cache(maxsize=4)
def choose_span_model(backend: str, path: str | None = None, threads: int = 2) -> SpanModel:
    """`backend` as set (QA_READER_BACKEND), or for "auto" the fastest of `available_backends`,
    timed on this machine at start (qa.reader.backends.fastest). Cached: one model per process
    and setting, whichever pipeline asks (the models not chosen are let go)."""
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
    check_model_dir(folder, "reader model")
    return load_tokenizer(str(folder))
