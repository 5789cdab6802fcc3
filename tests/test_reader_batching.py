"""MicroBatcher: concurrent callers share forward passes and each gets its own rows back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from qa.reader.batching import MicroBatcher


class RecordingModel:
    """Logits that depend on each row alone (ids x mask), recording the batch of every pass;
    the first pass can be held until released, so that others queue behind it."""

    name = "recording"

    def __init__(self, hold_first: bool = False, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.hold_first = hold_first
        self.fail = fail

    def __call__(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.entered.set()
        if self.hold_first and not self.batches:
            self.release.wait(5)
        self.batches.append(ids.shape[0])
        if self.fail:
            raise RuntimeError("model broke")
        logits = (ids * mask + types).astype(np.float32)
        return logits, -logits


def rows(n: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 1000, size=(n, width), dtype=np.int64)
    mask = np.ones((n, width), dtype=np.int64)
    mask[-1, width // 2 :] = 0  # the last row is padded, as the reader pads its batches
    return ids, mask, (rng.random((n, width)) > 0.5).astype(np.int64)


def test_a_lone_call_runs_at_once_and_returns_the_models_logits():
    model = RecordingModel()
    batcher = MicroBatcher(model)
    ids, mask, types = rows(3, 7, 0)
    start, end = batcher(ids, mask, types)
    expected = model(ids, mask, types)
    np.testing.assert_array_equal(start, expected[0])
    np.testing.assert_array_equal(end, expected[1])
    assert model.batches[0] == 3 and batcher.passes == 1


def test_calls_queued_behind_a_pass_share_the_next_one_and_get_their_own_rows():
    model = RecordingModel(hold_first=True)
    batcher = MicroBatcher(model, max_windows=64)
    inputs = [rows(2 + i, 5 + 3 * i, i) for i in range(5)]  # different widths: re-padded together
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(batcher, *inputs[0])
        assert model.entered.wait(5)
        rest = [pool.submit(batcher, *x) for x in inputs[1:]]
        while len(batcher._queue) < 4:  # the four others are waiting behind the held pass
            threading.Event().wait(0.01)
        model.release.set()
        results = [first.result(5)] + [f.result(5) for f in rest]
    assert model.batches == [2, sum(x[0].shape[0] for x in inputs[1:])]
    assert batcher.passes == 2 and batcher.calls == 5
    for x, (start, end) in zip(inputs, results, strict=True):
        alone = RecordingModel()(*x)
        assert start.shape == x[0].shape
        np.testing.assert_array_equal(start, alone[0])
        np.testing.assert_array_equal(end, alone[1])


def test_a_pass_takes_at_most_max_windows_unless_one_call_is_larger():
    model = RecordingModel(hold_first=True)
    batcher = MicroBatcher(model, max_windows=5)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher, *rows(9, 4, 0))  # alone over the cap: still runs, alone
        assert model.entered.wait(5)
        rest = [pool.submit(batcher, *rows(3, 4, i)) for i in range(1, 4)]
        while len(batcher._queue) < 3:
            threading.Event().wait(0.01)
        model.release.set()
        for f in [first, *rest]:
            f.result(5)
    assert model.batches == [9, 3, 3, 3]


def test_an_error_reaches_every_caller_of_the_pass_and_the_batcher_goes_on():
    model = RecordingModel(fail=True)
    batcher = MicroBatcher(model)
    with pytest.raises(RuntimeError, match="model broke"):
        batcher(*rows(2, 4, 0))
    model.fail = False
    start, _ = batcher(*rows(2, 4, 1))
    assert start.shape == (2, 4)


def test_max_windows_must_be_positive():
    with pytest.raises(ValueError, match="max_windows"):
        MicroBatcher(RecordingModel(), max_windows=0)
