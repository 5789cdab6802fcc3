"""Outlier channels of a MatMul's input kept in float32, so that dynamic int8 quantisation of
the rest is fine-grained (the decomposition of LLM.int8(), Dettmers et al. 2022).

ONNX Runtime's dynamic quantisation gives a MatMul's input one scale per batch, from its
largest value. In the reader, a few input channels of the feed-forward layers are 10-16x
larger than the median channel (channel 99 of every LayerNorm output, one or two GELU units of
the first blocks), so the scale rounds every other channel coarsely. Here each such MatMul

    Y = X @ W

becomes, exactly in float32,

    Y = (X * keep) @ W_rest  +  X[..., outliers] @ W[outliers]

where `keep` zeroes the outlier channels, W_rest is W with their rows zeroed, and the second
product (a few columns of X: negligible work) is named with OUTLIER_SUFFIX so the quantiser
leaves it in float32. The outlier channels are found by running the float32 model on sample
text (`calibrate`): channels whose largest magnitude is over `ratio` times the median
channel's. They are a property of the weights, not of the text: any prose finds the same.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

OUTLIER_SUFFIX = "_outlier_channels"


def _weighted_matmuls(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """MatMul nodes whose second input is a weight (an initializer): those the quantiser takes."""
    weights = {init.name for init in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def input_channel_maxima(
    model: onnx.ModelProto, nodes: Sequence[onnx.NodeProto], feeds: Sequence[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Per node, the largest magnitude of each input channel over the real (unmasked) tokens
    of `feeds`, running the model under ONNX Runtime with the nodes' inputs as extra outputs."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = [n.input[0] for n in nodes]
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    maxima: dict[str, np.ndarray] = {}
    for feed in feeds:
        real = feed["attention_mask"].astype(bool)
        for name, value in zip(names, session.run(names, feed), strict=True):
            batch_max = np.abs(value[real]).max(axis=0)
            maxima[name] = np.maximum(maxima[name], batch_max) if name in maxima else batch_max
    return {n.name: maxima[n.input[0]] for n in nodes}


def outlier_channels(maxima: np.ndarray, ratio: float, limit: int) -> np.ndarray:
    """Channels over `ratio` times the median channel's maximum, largest first, at most `limit`."""
    order = np.argsort(-maxima)[:limit]
    return order[maxima[order] > ratio * np.median(maxima)]


def split_outliers(model: onnx.ModelProto, channels: dict[str, np.ndarray]) -> None:
    """Rewrite, in place, each MatMul named in `channels` into the sum above (see the module)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    nodes = list(graph.node)
    del graph.node[:]
    for node in nodes:
        idx = channels.get(node.name)
        if idx is None or len(idx) == 0:
            graph.node.append(node)
            continue
        x, w_name = node.input
        w = numpy_helper.to_array(inits[w_name])
        keep = np.ones(w.shape[0], dtype=np.float32)
        keep[idx] = 0
        w_rest = w.copy()
        w_rest[idx] = 0
        p = node.name
        graph.initializer.extend(
            [
                numpy_helper.from_array(keep, f"{p}_keep"),
                numpy_helper.from_array(w_rest, f"{p}_w_rest"),
                numpy_helper.from_array(np.asarray(idx, dtype=np.int64), f"{p}_outlier_idx"),
                numpy_helper.from_array(w[idx], f"{p}_w_outliers"),
            ]
        )
        out = node.output[0]
        graph.node.extend(
            [
                helper.make_node("Mul", [x, f"{p}_keep"], [f"{p}_x_rest"], name=f"{p}_keep_mul"),
                helper.make_node("MatMul", [f"{p}_x_rest", f"{p}_w_rest"], [f"{p}_y_rest"], name=p),
                helper.make_node("Gather", [x, f"{p}_outlier_idx"], [f"{p}_x_outliers"], name=f"{p}_gather", axis=-1),
                helper.make_node(
                    "MatMul", [f"{p}_x_outliers", f"{p}_w_outliers"], [f"{p}_y_outliers"], name=p + OUTLIER_SUFFIX
                ),
                helper.make_node("Add", [f"{p}_y_rest", f"{p}_y_outliers"], [out], name=f"{p}_sum"),
            ]
        )
    # The replaced weights go unless another node still reads them.
    used = {i for n in graph.node for i in n.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def calibrate_and_split(
    model: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], pattern: str, ratio: float, limit: int
) -> dict[str, list[int]]:
    """Find the outlier channels of the MatMuls whose name matches `pattern` on `feeds` and
    split them off (`split_outliers`); returns them, by node, for the log."""
    import re

    nodes = [n for n in _weighted_matmuls(model) if re.search(pattern, n.name)]
    maxima = input_channel_maxima(model, nodes, feeds)
    channels = {name: outlier_channels(m, ratio, limit) for name, m in maxima.items()}
    split_outliers(model, channels)
    found = {name: [int(c) for c in idx] for name, idx in channels.items() if len(idx)}
    log.info("input channels kept in float32 (over %.0fx the median): %s", ratio, found)
    return found
