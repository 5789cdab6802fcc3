"""Micro-batching: the windows of questions read at the same time share forward passes.

`MicroBatcher` wraps a span model and is one itself. Calls from several threads that arrive
while a forward pass is running queue up; when it ends, the next caller runs one pass over
everything queued (up to `max_windows` windows, first come first served) and hands each
caller its rows back. A lone caller runs at once: nobody waits for company, so a quiet
server answers as fast as before, and a busy one runs fewer, fuller passes, one at a time
(two passes at once would only fight over the cores).

Off unless QA_READER_MICRO_BATCH is set: on 2 AVX2 cores with the int8 ONNX reader, 8 threads
reading at once got 0.82x the questions/s of one pass per question (bench.reader_batching):
the cores are already busy with one question's ~12 windows, and larger passes pad more.

Each caller's rows keep their own padding mask, so the answers do not depend on who shared
the pass, except through dynamic int8 quantisation, whose activation scale is taken over the
whole batch (a difference of the order of int8 rounding).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from qa.reader.backends import SpanModel


@dataclass
class _Job:
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray]  # input_ids, attention_mask, token_type_ids
    result: tuple[np.ndarray, np.ndarray] | None = None
    error: BaseException | None = None
    done: bool = False
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = self.arrays[0].shape[0]


def _stack(jobs: list[_Job]) -> tuple[np.ndarray, ...]:
    """The jobs' arrays one under the other, right-padded (mask 0) to the widest."""
    width = max(j.arrays[0].shape[1] for j in jobs)
    rows = sum(j.rows for j in jobs)
    out = tuple(np.zeros((rows, width), dtype=np.int64) for _ in range(3))
    r = 0
    for j in jobs:
        w = j.arrays[0].shape[1]
        for dst, src in zip(out, j.arrays, strict=True):
            dst[r : r + j.rows, :w] = src
        r += j.rows
    return out


class MicroBatcher:
    """A span model that runs concurrent callers' windows together (see the module docstring)."""

    def __init__(self, model: SpanModel, max_windows: int = 64) -> None:
        if max_windows < 1:
            raise ValueError(f"max_windows must be positive, got {max_windows}")
        self.model = model
        self.name = model.name
        self.max_windows = max_windows
        self._queue: list[_Job] = []
        self._running = False
        self._cond = threading.Condition()
        self.passes = 0  # forward passes run, and the calls they served: a batching ratio to log
        self.calls = 0

    def _take(self) -> list[_Job]:
        batch = [self._queue.pop(0)]
        rows = batch[0].rows
        while self._queue and rows + self._queue[0].rows <= self.max_windows:
            rows += self._queue[0].rows
            batch.append(self._queue.pop(0))
        return batch

    def _run(self, batch: list[_Job]) -> None:
        try:
            arrays = batch[0].arrays if len(batch) == 1 else _stack(batch)
            start, end = self.model(*arrays)
            r = 0
            for j in batch:
                w = j.arrays[0].shape[1]
                j.result = (start[r : r + j.rows, :w], end[r : r + j.rows, :w])
                r += j.rows
        except BaseException as exc:  # every caller in the pass gets the error, not a hang
            for j in batch:
                j.error = exc

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        job = _Job((input_ids, attention_mask, token_type_ids))
        with self._cond:
            self._queue.append(job)
            while not job.done:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                batch = self._take()
                self._cond.release()  # the pass runs unlocked, so others can queue meanwhile
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    for j in batch:
                        j.done = True
                    self._running = False
                    self.passes += 1
                    self.calls += len(batch)
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result
