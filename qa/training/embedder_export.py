"""Export the sentence embedder as an ONNX query encoder (and passage embedder): token ids in,
the L2-normalised mean of the last hidden states out (what sentence-transformers computes for
all-MiniLM-L6-v2).

    qa export-embedder [--embedder DIR] [--recipe fp32|int8] [--out FILE]

Why: a question is one short text, and for one short text sentence-transformers' PyTorch path
is mostly overhead. On 2 AVX2 cores a question took 22.9 ms there, 8.1 ms under ONNX Runtime
in float32 (the same vectors) and 4.6 ms in int8 (cosine 0.98 or more to PyTorch's; the same
recall and F1 end to end, other passages read for a third of questions; docs/benchmarks.md,
`python -m bench.query_encoders`). The same graphs embed passages at ingest when
QA_PASSAGE_EMBEDDER names them (one passage a call, measured fastest): float32 gives PyTorch's vectors, so an
index built either way opens under both; int8 gives other vectors, so an index records it under
its own name (qa/index/loading.py, passage_embedder_name) and opens only under it
(docs/benchmark-notes.md, `python -m bench.ingest_throughput`, `python -m bench.passage_embedders`).

Same steps as the reader's export (qa/training/onnx_steps.py): torch.onnx.export with eager attention,
ONNX Runtime's BERT fusions, and for the int8 recipe its dynamic quantisation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from qa.index.loading import ONNX_FILES, max_seq_length
from qa.training.onnx_steps import fuse_bert, quantise_int8, save_stamped

if TYPE_CHECKING:
    import torch

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "embedding"
RECIPES = ONNX_FILES  # recipe -> file name


def _encoder_module(embedder_dir: Path) -> torch.nn.Module:
    import torch
    from transformers import AutoModel

    # Eager attention traces to the MatMul/Softmax pattern the ORT optimizer fuses; SDPA does not.
    encoder = AutoModel.from_pretrained(str(embedder_dir), dtype=torch.float32, attn_implementation="eager").eval()

    class MeanPooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return MeanPooledEncoder().eval()


def _export_fp32(embedder_dir: Path, out: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    max_seq_length(embedder_dir)  # refuses an embedder that does not mean-pool
    tokenizer = AutoTokenizer.from_pretrained(str(embedder_dir))
    # Two texts of different lengths, so the traced graph keeps the padding mask.
    sample = tokenizer(["Who?", "When did the treaty expire?"], return_tensors="pt", padding=True)
    axes = {name: {0: "texts", 1: "tokens"} for name in INPUTS}
    torch.onnx.export(
        _encoder_module(embedder_dir),
        tuple(sample[name] for name in INPUTS),
        str(out),
        input_names=list(INPUTS),
        output_names=[OUTPUT],
        dynamic_axes={**axes, OUTPUT: {0: "texts"}},
        opset_version=17,
        dynamo=False,
    )


def export_query_encoder(embedder_dir: Path, out: Path, recipe: str) -> Path:
    """Write the embedder at `embedder_dir` to `out` as an ONNX query encoder, float32 or int8
    (`recipe`, a key of RECIPES)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "fp32.onnx"
        _export_fp32(embedder_dir, staged)
        fuse_bert(staged, embedder_dir)
        if recipe == "int8":
            quantised = Path(tmp) / "int8.onnx"
            quantise_int8(staged, quantised, ("MatMul", "Attention", "EmbedLayerNormalization"))
            staged = quantised
        return save_stamped(staged, out, embedder_dir)
