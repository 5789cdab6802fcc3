"""Extractive reader: find answer spans in passages with a SQuAD-style span model.

Every passage is cut into overlapping token windows (so an answer split by one window is
whole in the next), windows are batched by length, and each candidate span is scored as
p(start) * p(end) under one softmax over all the windows of all the passages read for the
question (shared normalisation, Clark & Gardner 2018): spans of different passages compete
for the same probability mass, as the model was trained, instead of each passage crowning
its own. The model was also trained to put its mass on [CLS] when a window holds no answer,
so a question the passages do not answer leaves every span a small probability, which can
be thresholded for "no answer".
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

    from qa.reader.backends import SpanModel


@dataclass(frozen=True)
class ReaderSpan:
    """A candidate answer: characters [start, end) of passage number `passage`."""

    passage: int
    start: int
    end: int
    text: str
    score: float


@dataclass
class ReadingCost:
    """What one question's reading cost: the passages and tokens read by the model, and the time
    spent tokenising and in forward passes (ms). Kept by a reader made by `for_question`."""

    windows: int = 0
    tokens: int = 0
    tokenize_ms: float = 0.0
    model_ms: float = 0.0
    seen: set[str] = field(default_factory=set, repr=False)  # distinct passages read

    @property
    def passages(self) -> int:
        return len(self.seen)


class Reader(Protocol):
    """What the pipeline asks of a reader: ExtractiveReader, or a stand-in in the fast tests."""

    def read(self, question: str, passages: Sequence[str], n_best: int = 5) -> list[ReaderSpan]: ...

    def read_many(
        self,
        questions: Sequence[str],
        passages: Sequence[str],
        n_best: int = 5,
        groups: Sequence[int] | None = None,
    ) -> list[list[ReaderSpan]]: ...


# The question shares each window with the passage; past this many tokens it is cut (as in
# SQuAD's max_query_length), so a long question still leaves room for the passage.
MAX_QUESTION_TOKENS = 64


def clip_question(tokenizer: PreTrainedTokenizerFast, question: str, max_tokens: int = MAX_QUESTION_TOKENS) -> str:
    offsets = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return question if len(offsets) <= max_tokens else question[: offsets[max_tokens - 1][1]]


@dataclass
class EncodedWindows:
    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    offsets: list[list[tuple[int, int] | None]]  # char offsets for context tokens, else None
    sample: list[int]  # which (question, context) pair each window came from


def encode_windows(
    tokenizer: PreTrainedTokenizerFast,
    questions: Sequence[str],
    contexts: Sequence[str],
    max_length: int,
    stride: int,
) -> EncodedWindows:
    """Tokenise question/context pairs into overlapping windows of at most max_length tokens."""
    clipped = {q: clip_question(tokenizer, q) for q in set(questions)}
    enc = tokenizer(
        [clipped[q] for q in questions],
        list(contexts),
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    offsets: list[list[tuple[int, int] | None]] = []
    for i, window_offsets in enumerate(enc["offset_mapping"]):
        seq_ids = enc.sequence_ids(i)
        offsets.append([tuple(o) if s == 1 else None for o, s in zip(window_offsets, seq_ids, strict=True)])
    return EncodedWindows(
        input_ids=enc["input_ids"],
        token_type_ids=enc["token_type_ids"],
        offsets=offsets,
        sample=list(enc["overflow_to_sample_mapping"]),
    )


def pad_batch(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


# Windows of similar length share a forward pass: sorted by length, a batch takes windows up
# to this much longer than its shortest. Less padding read: on 2 AVX2 cores, 10 SQuAD passages
# read 1.16x (ONNX float32), 1.23x (int8), 1.07x (PyTorch) as fast as in one padded batch
# (bench.length_batching; 20% and 40% were slower).
BATCH_LENGTH_SLACK = 0.1


def length_batches(lengths: Sequence[int], max_rows: int, slack: float = BATCH_LENGTH_SLACK) -> list[list[int]]:
    """Indices of `lengths` in batches of at most `max_rows`, shortest first, each holding
    lengths up to (1 + slack) times its first."""
    batches: list[list[int]] = []
    for w in sorted(range(len(lengths)), key=lengths.__getitem__):
        if batches and len(batches[-1]) < max_rows and lengths[w] <= (1 + slack) * lengths[batches[-1][0]]:
            batches[-1].append(w)
        else:
            batches.append([w])
    return batches


@dataclass(frozen=True)
class _Window:
    """One window of a (question, passage) pair as read: its context tokens' character
    offsets (None for the question and special tokens) and the logits of its real tokens."""

    offsets: list[tuple[int, int] | None]
    start_logits: np.ndarray
    end_logits: np.ndarray


def _logsumexp(x: np.ndarray) -> float:
    top = x.max()
    return float(top + np.log(np.exp(x - top).sum()))


def best_spans_in_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: list[tuple[int, int] | None],
    max_answer_tokens: int,
    n_best: int,
    log_norm: tuple[float, float] | None = None,
) -> list[tuple[int, int, float]]:
    """Top (start_char, end_char, probability) spans of one window, best first. Probabilities
    are under the softmax over this window, or over a group of windows whose (start, end)
    log-normalisers are `log_norm`."""
    n = len(offsets)
    if log_norm is None:
        log_norm = (_logsumexp(start_logits[:n]), _logsumexp(end_logits[:n]))
    log_start = start_logits[:n] - log_norm[0]
    log_end = end_logits[:n] - log_norm[1]
    context = np.array([o is not None for o in offsets])
    if not context.any():
        return []
    idx = np.flatnonzero(context)
    lo, hi = idx[0], idx[-1] + 1
    s = log_start[lo:hi]
    e = log_end[lo:hi]
    scores = s[:, None] + e[None, :]
    width = hi - lo
    i, j = np.indices((width, width))
    valid = (j >= i) & (j - i < max_answer_tokens)
    valid &= context[lo:hi][:, None] & context[lo:hi][None, :]
    scores = np.where(valid, scores, -np.inf)
    flat = scores.ravel()
    k = min(n_best, int(valid.sum()))
    if k == 0:
        return []
    top = np.argpartition(-flat, k - 1)[:k]
    top = top[np.argsort(-flat[top])]
    out = []
    for t in top:
        a, b = divmod(int(t), width)
        start_char = offsets[lo + a][0]
        end_char = offsets[lo + b][1]
        out.append((start_char, end_char, float(np.exp(flat[t]))))
    return out


class ExtractiveReader:
    """Reads passages for a question and returns the best answer spans with probabilities."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerFast,
        model: SpanModel,
        max_length: int = 256,
        stride: int = 96,
        max_answer_tokens: int = 30,
        batch_size: int = 32,
        length_slack: float = BATCH_LENGTH_SLACK,
    ) -> None:
        if max_length < 32:
            raise ValueError(f"max_length must be at least 32 tokens, got {max_length}")
        if not 0 <= stride < max_length // 2:
            raise ValueError(f"stride must be in [0, max_length/2), got {stride}")
        if max_answer_tokens < 1:
            raise ValueError(f"max_answer_tokens must be positive, got {max_answer_tokens}")
        self.tokenizer = tokenizer
        self.model = model
        self.max_length = max_length
        self.stride = stride
        self.max_answer_tokens = max_answer_tokens
        self.batch_size = batch_size
        self.length_slack = length_slack
        self._memo: dict[tuple[str, str], list[_Window]] | None = None
        self.cost: ReadingCost | None = None

    def for_question(self) -> ExtractiveReader:
        """This reader (the same model) for one question's reading: it keeps the windows it
        reads, so the question's passages read again, e.g. each article alone
        (qa/answer/recency.py), cost no second forward pass. Not shared between questions or
        threads: a question asked twice is read twice."""
        one = copy.copy(self)
        one._memo = {}
        one.cost = ReadingCost()
        return one

    def _logits(self, windows: EncodedWindows) -> list[tuple[np.ndarray, np.ndarray]]:
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(windows.input_ids)
        pad_id = self.tokenizer.pad_token_id or 0
        for chunk in length_batches([len(ids) for ids in windows.input_ids], self.batch_size, self.length_slack):
            ids, mask = pad_batch([windows.input_ids[w] for w in chunk], pad_id)
            types, _ = pad_batch([windows.token_type_ids[w] for w in chunk], 0)
            starts, ends = self.model(ids, mask, types)
            for row, w in enumerate(chunk):
                out[w] = (starts[row], ends[row])
        return out  # type: ignore[return-value]

    def _read_windows(self, questions: Sequence[str], passages: Sequence[str]) -> list[list[_Window]]:
        """Each (question, passage) pair's windows with their logits, those not read before by
        this reader (`for_question`) in one go."""
        keys = list(zip(questions, passages, strict=True))
        memo = {} if self._memo is None else self._memo
        found = {k: memo[k] for k in keys if k in memo}
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            t0 = time.perf_counter()
            windows = encode_windows(
                self.tokenizer, [q for q, _ in missing], [p for _, p in missing], self.max_length, self.stride
            )
            t1 = time.perf_counter()
            logits = self._logits(windows)
            if self.cost is not None:
                self.cost.tokenize_ms += 1000 * (t1 - t0)
                self.cost.model_ms += 1000 * (time.perf_counter() - t1)
                self.cost.seen.update(p for _, p in missing)
                self.cost.windows += len(windows.input_ids)
                self.cost.tokens += sum(len(ids) for ids in windows.input_ids)
            read: dict[tuple[str, str], list[_Window]] = {k: [] for k in missing}
            for w, (start, end) in enumerate(logits):
                n = len(windows.offsets[w])
                read[missing[windows.sample[w]]].append(_Window(windows.offsets[w], start[:n], end[:n]))
            found.update(read)
            memo.update(read)
        return [found[k] for k in keys]

    def read_many(
        self,
        questions: Sequence[str],
        passages: Sequence[str],
        n_best: int = 5,
        groups: Sequence[int] | None = None,
    ) -> list[list[ReaderSpan]]:
        """One (question, passage) pair per row; returns the best spans of each pair. Rows with
        the same `groups` label share one softmax (they are one question's passages); by
        default each row is its own group."""
        if len(questions) != len(passages) or (groups is not None and len(groups) != len(passages)):
            raise ValueError("questions, passages and groups must have the same length")
        if not passages:
            return []
        groups = list(range(len(passages))) if groups is None else list(groups)
        windows = self._read_windows(questions, passages)
        per_group: dict[int, tuple[list[float], list[float]]] = {}
        for pair, pair_windows in enumerate(windows):
            starts, ends = per_group.setdefault(groups[pair], ([], []))
            for window in pair_windows:
                starts.append(_logsumexp(window.start_logits))
                ends.append(_logsumexp(window.end_logits))
        log_norm = {g: (_logsumexp(np.array(s)), _logsumexp(np.array(e))) for g, (s, e) in per_group.items()}
        best: list[dict[tuple[int, int], float]] = [dict() for _ in passages]
        for pair, pair_windows in enumerate(windows):
            for window in pair_windows:
                spans = best_spans_in_window(
                    window.start_logits,
                    window.end_logits,
                    window.offsets,
                    self.max_answer_tokens,
                    n_best,
                    log_norm[groups[pair]],
                )
                for start, end, score in spans:
                    key = (start, end)
                    if score > best[pair].get(key, 0.0):
                        best[pair][key] = score
        results = []
        for pair, found in enumerate(best):
            ranked = sorted(found.items(), key=lambda kv: -kv[1])[:n_best]
            results.append([ReaderSpan(pair, s, e, passages[pair][s:e], score) for (s, e), score in ranked])
        return results

    def read(self, question: str, passages: Sequence[str], n_best: int = 5) -> list[ReaderSpan]:
        """Best spans over all passages for one question (one softmax across them), best first."""
        per_passage = self.read_many([question] * len(passages), passages, n_best, groups=[0] * len(passages))
        spans = [s for group in per_passage for s in group]
        return sorted(spans, key=lambda s: -s.score)[:n_best]
