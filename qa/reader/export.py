"""Export the reader to ONNX for ONNX Runtime, optionally with int8 weights.

    python -m qa.cli export-reader [--reader DIR] [--out FILE] [--recipe NAME]

Three steps, each by the library made for it: torch.onnx.export (TorchScript exporter, eager
attention, so that ONNX Runtime's BERT optimizer recognises the attention blocks), ONNX
Runtime's transformer optimizer (fused Attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm),
then, for an int8 recipe, its dynamic quantisation (int8 weights, activations quantised per
batch at run time). Which layers are quantised, and how, is a `Quantisation` recipe: RECIPES
holds the ones measured side by side (`python -m bench.reader_backends`, docs/benchmarks.md).

The file records the SHA-256 of the weights it came from, so a reader retrained without
re-exporting is noticed at load instead of silently reading with the old weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
SOURCE_KEY = "source_weights_sha256"
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
    # 7-bit weights: AVX2 CPUs without VNNI multiply u8 x s8 pairs into int16 (vpmaddubsw),
    # which saturates with 8-bit weights.
    reduce_range: bool = True
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
    "fp32": Recipe("model.fp32.onnx", None),
    # Input channels over 3x the median kept in float32 (outliers.py): 0.3 F1 closer to float32
    # than plain int8 end to end, 0.07x slower (docs/benchmarks.md, bench.reader_backends).
    "int8": Recipe("model.int8.onnx", Quantisation(outlier_ratio=3.0, outlier_limit=8)),
}


def weights_digest(reader_dir: Path) -> str:
    h = hashlib.sha256()
    with open(reader_dir / WEIGHTS_FILE, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def onnx_source_digest(path: Path) -> str | None:
    """The weights digest recorded in an exported ONNX file (None if it has none)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == SOURCE_KEY), None)


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


def _fuse(path: Path, reader_dir: Path) -> None:
    from onnxruntime.transformers import optimizer
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(reader_dir))
    fused = optimizer.optimize_model(
        str(path), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size, opt_level=1
    )
    log.info("fused operators: %s", {k: v for k, v in fused.get_fused_operator_statistics().items() if v})
    fused.save_model_to_file(str(path))


def calibration_feeds(reader_dir: Path, windows: int = 32, batch: int = 8) -> list[dict[str, np.ndarray]]:
    """Batches of reader input from the bundled news articles (title as the question, the
    start of the text as the passage): sample activations for finding outlier channels."""
    from transformers import AutoTokenizer

    from qa.resources import SEEDS_DIR

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
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from qa.reader.outliers import OUTLIER_SUFFIX, calibrate_and_split

    if q.outlier_ratio is not None:
        model = onnx.load(str(src))
        calibrate_and_split(model, calibration_feeds(reader_dir), q.outlier_nodes, q.outlier_ratio, q.outlier_limit)
        onnx.save(model, str(src))
    graph = onnx.load(str(src), load_external_data=False).graph
    patterns = (*q.exclude, re.escape(OUTLIER_SUFFIX))
    excluded = [n.name for n in graph.node if any(re.search(pattern, n.name) for pattern in patterns)]
    log.info("quantising %s; kept in float32: %s", ", ".join(q.op_types), excluded or "nothing")
    quantize_dynamic(
        str(src),
        str(out),
        op_types_to_quantize=list(q.op_types),
        nodes_to_exclude=excluded,
        weight_type=QuantType.QInt8,
        per_channel=q.per_channel,
        reduce_range=q.reduce_range,
        # Fused ops come from the com.microsoft domain, which ONNX shape inference cannot type:
        # their outputs are float32.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def export_onnx(reader_dir: Path, out: Path, recipe: Recipe) -> Path:
    """Write the reader at `reader_dir` to `out` as an ONNX model made by `recipe`."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "fp32.onnx"
        _export_fp32(reader_dir, staged)
        if recipe.fuse:
            _fuse(staged, reader_dir)
        if recipe.quantisation is not None:
            quantised = Path(tmp) / "int8.onnx"
            _quantise(staged, quantised, recipe.quantisation, reader_dir)
            staged = quantised
        model = onnx.load(str(staged))
        onnx.helper.set_model_props(model, {SOURCE_KEY: weights_digest(reader_dir)})
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        onnx.save(model, str(partial))
        partial.replace(out)  # never a half-written model where the reader looks for one
    log.info("wrote %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
