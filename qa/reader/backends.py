"""How the reader's span model runs: token ids in, (start, end) logits out, as numpy.

The extractive reader only needs this one call, so the same weights can run as PyTorch in
float32 (every CPU) or under bfloat16 autocast (CPUs with native bf16), or as an ONNX model
exported from them (ONNX Runtime; qa/training/reader_export.py makes it, float32 or int8), or
converted for CTranslate2 (int8).
`qa.reader.loading.choose_span_model` picks one from QA_READER_BACKEND; for "auto" it times those
available on the machine and keeps the fastest (`fastest`).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from qa.loading import SOURCE_KEY, onnx_cpu_session

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

# "auto" chooses among the backends that read within 0.5 F1 of float32 end to end, as deployed
# (each at its own calibration): onnx-int8 (outlier channels in float32) measured -0.22 F1 +- 0.57
# on 2,643 SQuAD dev questions, and with the reading cascade +0.3 on the news benchmark's dev split
# against float32 reading all 10 passages. Not ctranslate2-int8: its plain int8 weights read -0.3
# on news dev reading all passages, -0.9 with the cascade (docs/latency.md); it is there by name.
# No PyTorch int8: its dynamic quantisation lost more F1 than ONNX Runtime's, and the
# quantised-tensor API it rests on is deprecated (torch 2.13 warns).
# The backends' names: ReaderBackend and BACKENDS in qa/names.py.
NOT_FOR_AUTO: tuple[str, ...] = ("ctranslate2-int8",)
# Those that score answers as float32 PyTorch does (within rounding): one calibration serves
# them all; an int8 one has its own (qa/answer/calibration.py).
FLOAT_BACKENDS: tuple[str, ...] = ("torch-fp32", "torch-bf16", "onnx-fp32")


class SpanModel(Protocol):
    name: str

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray, /
    ) -> tuple[np.ndarray, np.ndarray]:
        """int64 arrays of shape (windows, tokens) -> float32 start and end logits, same shape."""
        ...


class TorchSpanModel:
    """A transformers question-answering model in float32; with `bf16`, run under bfloat16
    autocast."""

    def __init__(self, model: PreTrainedModel, bf16: bool = False) -> None:
        self.model = model
        self.bf16 = bf16
        self.name = "torch-bf16" if bf16 else "torch-fp32"

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
                token_type_ids=torch.from_numpy(token_type_ids),
            )
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()


class OnnxSpanModel:
    """An ONNX span model under ONNX Runtime on the CPU, with `threads` intra-op threads."""

    def __init__(self, path: Path, threads: int, name: str) -> None:
        self.session = onnx_cpu_session(path, threads)
        self.name = name

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.session.run(
            ["start_logits", "end_logits"],
            {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids},
        )
        return np.asarray(start), np.asarray(end)


CT2_DIR = "ct2-int8"  # the CTranslate2 copy's folder, beside the weights (qa/training/reader_export.py)
CT2_HEAD = "span_head.npz"  # the span head's weight (2 x hidden) and bias
CT2_STAMP = "source.json"  # {SOURCE_KEY: digest of the weights it came from}


def ct2_source_digest(folder: Path) -> str | None:
    """The weights digest recorded in a CTranslate2 copy (None if it has none)."""
    try:
        return json.loads((folder / CT2_STAMP).read_text()).get(SOURCE_KEY)
    except (OSError, ValueError, AttributeError):
        return None


class CTranslate2SpanModel:
    """The reader's encoder under CTranslate2 (int8 weights), its span head in numpy: CTranslate2
    takes each row at its own length, so no padding is read."""

    def __init__(self, folder: Path, threads: int, name: str = "ctranslate2-int8") -> None:
        import ctranslate2

        self.encoder = ctranslate2.Encoder(str(folder), device="cpu", compute_type="int8", intra_threads=threads)
        head = np.load(folder / CT2_HEAD)
        self.weight, self.bias = head["weight"].T.copy(), head["bias"]
        self.name = name

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        lengths = attention_mask.sum(axis=1)
        out = self.encoder.forward_batch(
            [row[:n].tolist() for row, n in zip(input_ids, lengths, strict=True)],
            token_type_ids=[row[:n].tolist() for row, n in zip(token_type_ids, lengths, strict=True)],
        )
        hidden = np.asarray(out.last_hidden_state)  # (windows, longest, hidden), padding after each row's length
        logits = hidden @ self.weight + self.bias
        start = np.zeros(input_ids.shape, np.float32)
        end = np.zeros(input_ids.shape, np.float32)
        width = min(logits.shape[1], input_ids.shape[1])
        start[:, :width], end[:, :width] = logits[:, :width, 0], logits[:, :width, 1]
        return start, end


def probe_batch(windows: int = 4, tokens: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What `fastest` times: full-length windows, a third of one question's reading (10 passages
    are about 12 windows of up to 256 tokens), so that timing at start costs about a second.
    Timing depends on shapes, not on which tokens."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 20000, size=(windows, tokens), dtype=np.int64)
    ids[:, 0] = 101  # [CLS]
    types = np.zeros_like(ids)
    types[:, 24:] = 1  # a question of ~20 tokens, then the passage
    return ids, np.ones_like(ids), types


def fastest(models: Sequence[SpanModel], rounds: int = 3) -> SpanModel:
    """The model that reads `probe_batch` fastest here: each warmed up once, then timed in
    `rounds` interleaved rounds (so that load from other processes falls on all alike), median."""
    if not models:
        raise ValueError("no span model to choose from")
    batch = probe_batch()
    seconds: dict[int, list[float]] = {i: [] for i in range(len(models))}
    for m in models:
        m(*batch)
    for _ in range(rounds):
        for i, m in enumerate(models):
            t0 = time.perf_counter()
            m(*batch)
            seconds[i].append(time.perf_counter() - t0)
    medians = {i: statistics.median(s) for i, s in seconds.items()}
    log.info("reader backends timed: %s", ", ".join(f"{models[i].name} {1000 * t:.0f} ms" for i, t in medians.items()))
    return models[min(medians, key=lambda i: medians[i])]
