"""Export the reader to ONNX for ONNX Runtime, optionally with int8 weights, or to CTranslate2.

    qa export-reader [--reader DIR] [--out FILE] [--recipe NAME]

Three steps, each by the library made for it: torch.onnx.export (TorchScript exporter, eager
attention, so that ONNX Runtime's BERT optimizer recognises the attention blocks), ONNX
Runtime's transformer optimizer (fused Attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm),
then, for an int8 recipe, its dynamic quantisation (int8 weights, activations quantised per
batch at run time). Which layers are quantised, and how, is a `Quantisation` recipe: RECIPES
holds the ones measured side by side (`python -m bench.reader_backends`, docs/benchmarks.md).

The "ct2-int8" recipe is CTranslate2's own converter (int8 weights, its int8 GEMMs): the BERT
encoder goes to CTranslate2, the span head (a 384x2 linear layer) beside it as numpy arrays.

Each copy records the SHA-256 of the weights it came from, so a reader retrained without
re-exporting is noticed at load instead of silently reading with the old weights.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.loading import SOURCE_KEY, WEIGHTS_FILE, weights_digest
from qa.reader.backends import CT2_HEAD, CT2_STAMP
from qa.reader.loading import ONNX_FILES
from qa.resources import SEEDS_DIR
from qa.training.onnx_steps import fuse_bert, quantise_int8, save_stamped
from qa.training.outliers import OUTLIER_SUFFIX, calibrate_and_split

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = ("start_logits", "end_logits")


@dataclass(frozen=True)
class Quantisation:
    """How ONNX Runtime's quantize_dynamic is run. `op_types`: the operators given int8
    weights (after fusion: MatMul for the dense layers outside attention, Attention for the
    fused query/key/value projection, EmbedLayerNormalization for the embedding tables);
    `exclude`: regular expressions searched in node names, for the nodes kept in float32 (e.g.
    "intermediate" for the first feed-forward layer of every block, "qa_outputs" for the span
    head)."""

    op_types: tuple[str, ...] = ("MatMul", "Attention", "EmbedLayerNormalization")
    exclude: tuple[str, ...] = ()
    per_channel: bool = True
    reduce_range: bool = True  # 7-bit weights (qa.training.onnx_steps.quantise_int8 says why)
    # Input channels over this many times the median channel kept in float32 (outliers.py), in
    # the MatMuls whose names match `outlier_nodes`, at most `outlier_limit` per MatMul.
    outlier_ratio: float | None = None
    outlier_nodes: str = "MatMul"
    outlier_limit: int = 4


@dataclass(frozen=True)
class Recipe:
    file: str  # written beside the weights
    quantisation: Quantisation | None  # None: float32 weights
    fuse: bool = True


RECIPES: dict[str, Recipe] = {
    "fp32": Recipe(ONNX_FILES["fp32"], None),
    # Input channels over 3x the median kept in float32 (outliers.py): 0.3 F1 closer to float32
    # than plain int8 end to end, 0.07x slower (docs/benchmarks.md, bench.reader_backends).
    "int8": Recipe(ONNX_FILES["int8"], Quantisation(outlier_ratio=3.0, outlier_limit=8)),
}


CT2_RECIPE = "ct2-int8"


def export_ctranslate2(reader_dir: Path, out: Path) -> Path:
    """Write the reader at `reader_dir` to the folder `out` for CTranslate2 (int8 weights),
    stamped with its weights' digest; swapped in whole, so no half-written copy is ever loaded."""
    import shutil

    from ctranslate2.converters import TransformersConverter
    from safetensors.numpy import load_file
    from transformers.utils import logging as hf_logging

    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        staged = Path(tmp) / "ct2"
        # The converter loads the encoder (BertModel) from the checkpoint and leaves the span head;
        # its warning about the pooler the checkpoint lacks (unused here) is noise.
        hf_logging.set_verbosity_error()
        TransformersConverter(str(reader_dir), load_as_float16=False).convert(str(staged), quantization="int8")
        weights = load_file(str(reader_dir / WEIGHTS_FILE))
        np.savez(
            staged / CT2_HEAD,
            weight=weights["qa_outputs.weight"].astype(np.float32),
            bias=weights["qa_outputs.bias"].astype(np.float32),
        )
        (staged / CT2_STAMP).write_text(json.dumps({SOURCE_KEY: weights_digest(reader_dir)}) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        staged.rename(out)
    return out


def _export_fp32(reader_dir: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(reader_dir))
    # Eager attention traces to the MatMul/Softmax pattern the ORT optimizer fuses; SDPA does not.
    model = AutoModelForQuestionAnswering.from_pretrained(
        str(reader_dir), dtype=torch.float32, attn_implementation="eager"
    ).eval()
    # Two rows of different lengths, so the traced graph keeps the padding mask.
    sample = tokenizer(
        ["Who?", "When did it end?"], ["A text.", "It ended in 1945."], return_tensors="pt", padding=True
    )
    axes = {name: {0: "windows", 1: "tokens"} for name in INPUTS + OUTPUTS}
    torch.onnx.export(
        model,
        tuple(sample[name] for name in INPUTS),
        str(out),
        input_names=list(INPUTS),
        output_names=list(OUTPUTS),
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )


def calibration_feeds(reader_dir: Path, windows: int = 32, batch: int = 8) -> list[dict[str, np.ndarray]]:
    """Batches of reader input from the bundled news articles (title as the question, the
    start of the text as the passage): sample activations for finding outlier channels."""
    from transformers import AutoTokenizer

    with open(SEEDS_DIR / "articles" / "wikinews.jsonl", encoding="utf-8") as fh:
        articles = [json.loads(line) for line, _ in zip(fh, range(windows), strict=False)]
    tokenizer = AutoTokenizer.from_pretrained(str(reader_dir))
    feeds = []
    for b in range(0, len(articles), batch):
        part = articles[b : b + batch]
        enc = tokenizer(
            [a["title"] for a in part],
            [a["text"][:2000] for a in part],
            truncation="only_second",
            max_length=256,
            padding=True,
            return_tensors="np",
        )
        feeds.append({name: enc[name].astype(np.int64) for name in INPUTS})
    return feeds


def _quantise(src: Path, out: Path, q: Quantisation, reader_dir: Path) -> None:
    import onnx

    if q.outlier_ratio is not None:
        model = onnx.load(str(src))
        calibrate_and_split(model, calibration_feeds(reader_dir), q.outlier_nodes, q.outlier_ratio, q.outlier_limit)
        onnx.save(model, str(src))
    graph = onnx.load(str(src), load_external_data=False).graph
    patterns = (*q.exclude, re.escape(OUTLIER_SUFFIX))
    excluded = [n.name for n in graph.node if any(re.search(pattern, n.name) for pattern in patterns)]
    quantise_int8(src, out, q.op_types, excluded, q.per_channel, q.reduce_range)


def export_onnx(reader_dir: Path, out: Path, recipe: Recipe) -> Path:
    """Write the reader at `reader_dir` to `out` as an ONNX model made by `recipe`."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "fp32.onnx"
        _export_fp32(reader_dir, staged)
        if recipe.fuse:
            fuse_bert(staged, reader_dir)
        if recipe.quantisation is not None:
            quantised = Path(tmp) / "int8.onnx"
            _quantise(staged, quantised, recipe.quantisation, reader_dir)
            staged = quantised
        return save_stamped(staged, out, reader_dir)
