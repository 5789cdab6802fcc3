"""What every model loader shares (the reader's in qa/reader/loading.py, the embedder's in
qa/index/loading.py): the error for a missing model, folder checks, the weights digest an
exported ONNX file must match, the ONNX Runtime session, tokenizers and torch's thread count.
Nothing here touches the network; torch, transformers, onnx and onnxruntime are imported when
first used, so that `qa --help` loads none of them.

Every exported file records the SHA-256 of the weights it came from (`SOURCE_KEY`, written by
qa/training/onnx_steps.py), so that a model retrained or upgraded without re-exporting is
noticed at load instead of silently running the old weights.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import QAError

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from transformers import PreTrainedTokenizerFast

WEIGHTS_FILE = "model.safetensors"
SOURCE_KEY = "source_weights_sha256"


class ModelNotFoundError(QAError, RuntimeError):
    """A model folder is missing or incomplete; the message says how to get it."""


def configure_torch_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads; numpy's BLAS and torch fighting over 2 cores costs 2x."""
    import torch

    if threads:
        torch.set_num_threads(threads)


def check_model_dir(path: Path, what: str) -> None:
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{what} not found at {path} (no config.json there)")


def quiet_transformers() -> None:
    """No progress bar per weight load: noise in a server log and in CLI output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


@lru_cache(maxsize=4)
def load_tokenizer(folder: str) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def weights_digest(model_dir: Path) -> str:
    """SHA-256 of the weights in `model_dir`, read once per file version: at start every ONNX
    copy beside the same weights (the reader has two) is checked against them."""
    weights = (model_dir / WEIGHTS_FILE).resolve()
    stat = weights.stat()
    return _file_digest(weights, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def onnx_source_digest(path: Path) -> str | None:
    """The weights digest recorded in an exported ONNX file (None if it has none)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == SOURCE_KEY), None)


def checked_onnx_file(onnx_file: Path, weights_dir: Path, what: str, command: str) -> Path:
    """`onnx_file` if it is there and was exported from the weights in `weights_dir`
    (ModelNotFoundError, with the command that makes it, when it is missing or stale)."""
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
