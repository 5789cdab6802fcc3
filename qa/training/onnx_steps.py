"""Steps shared by the ONNX exports of the reader (reader_export.py) and of the query encoder
(embedder_export.py), each done by the library made for it: ONNX Runtime's transformer optimizer
fuses the BERT blocks, its dynamic quantisation makes int8 copies.

Every exported file records the SHA-256 of the weights it came from (`SOURCE_KEY`, checked at
load by qa/loading.py), so that a model retrained or upgraded without re-exporting is noticed at
load instead of silently running the old weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from qa.loading import SOURCE_KEY, weights_digest

log = logging.getLogger(__name__)


def fuse_bert(path: Path, model_dir: Path) -> None:
    """Rewrite the BERT graph at `path` with ONNX Runtime's fused operators (Attention,
    SkipLayerNorm, BiasGelu, EmbedLayerNorm). The graph must come from eager attention: SDPA
    traces to a pattern the optimizer does not recognise."""
    from onnxruntime.transformers import optimizer
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    fused = optimizer.optimize_model(
        str(path), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size, opt_level=1
    )
    log.info("fused operators: %s", {k: v for k, v in fused.get_fused_operator_statistics().items() if v})
    fused.save_model_to_file(str(path))


def quantise_int8(
    src: Path,
    out: Path,
    op_types: Sequence[str],
    excluded: Sequence[str] = (),
    per_channel: bool = True,
    reduce_range: bool = True,
) -> None:
    """ONNX Runtime's dynamic quantisation: int8 weights for `op_types` (except the nodes named
    in `excluded`), activations quantised per batch at run time. `reduce_range`: 7-bit weights,
    as AVX2 CPUs without VNNI multiply u8 x s8 pairs into int16 (vpmaddubsw), which saturates
    with 8-bit weights."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantising %s; kept in float32: %s", ", ".join(op_types), list(excluded) or "nothing")
    quantize_dynamic(
        str(src),
        str(out),
        op_types_to_quantize=list(op_types),
        nodes_to_exclude=list(excluded),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        reduce_range=reduce_range,
        # Fused ops come from the com.microsoft domain, which ONNX shape inference cannot type:
        # their outputs are float32.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def save_stamped(staged: Path, out: Path, model_dir: Path) -> Path:
    """Write the ONNX model at `staged` to `out`, stamped with the digest of `model_dir`'s
    weights; atomically, so that no half-written model is ever where a loader looks."""
    import onnx

    model = onnx.load(str(staged))
    onnx.helper.set_model_props(model, {SOURCE_KEY: weights_digest(model_dir)})
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    onnx.save(model, str(partial))
    partial.replace(out)
    log.info("wrote %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
