"""Choosing the reader's backend, without loading a model: QA_READER_BACKEND is checked where
settings are read, and "auto" keeps the model that reads fastest here."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pydantic import ValidationError

from qa.cli import build_parser, main
from qa.config import Settings
from qa.names import BACKENDS
from qa.reader.backends import fastest, probe_batch


class SleepingModel:
    """A span model that takes `seconds` per call and records the batches it was given."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name, self.seconds = name, seconds
        self.shapes: list[tuple[int, ...]] = []

    def __call__(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        self.shapes.append(input_ids.shape)
        time.sleep(self.seconds)
        return np.zeros(input_ids.shape, np.float32), np.zeros(input_ids.shape, np.float32)


def test_fastest_keeps_the_model_that_reads_the_probe_fastest(caplog):
    models = [SleepingModel("slow", 0.03), SleepingModel("fast", 0.005), SleepingModel("middle", 0.015)]
    with caplog.at_level("INFO", logger="qa.reader.backends"):
        assert fastest(models, rounds=3).name == "fast"
    # Every model warmed up once, then timed 3 times, on one question's worth of windows.
    assert all(m.shapes == [probe_batch()[0].shape] * 4 for m in models)
    assert "reader backends timed: slow" in caplog.text and "fast" in caplog.text


def test_fastest_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no span model"):
        fastest([])


def test_probe_batch_is_a_question_and_a_passage_per_window():
    ids, mask, types = probe_batch(windows=3, tokens=64)
    assert ids.shape == mask.shape == types.shape == (3, 64) and ids.dtype == np.int64
    assert (ids[:, 0] == 101).all() and mask.all() and types[:, :24].sum() == 0 and types[:, 24:].all()


def test_every_backend_and_auto_are_accepted_and_nothing_else(monkeypatch):
    for name in ("auto", *BACKENDS):
        monkeypatch.setenv("QA_READER_BACKEND", name)
        assert Settings().reader_backend == name
    monkeypatch.setenv("QA_READER_BACKEND", "tpu")
    with pytest.raises(ValidationError, match="reader_backend"):
        Settings()
    # The CLI turns it into a one-line error naming the setting, before loading anything.
    with pytest.raises(SystemExit, match="(?s)bad QA_\\* setting.*reader_backend.*'auto', 'torch-fp32'.*'onnx-int8'"):
        main(["ask", "When does New START expire?"])


def test_export_reader_has_help_and_refuses_a_folder_without_weights(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["export-reader", "--help"])
    assert exc.value.code == 0 and "--recipe {fp32,int8,ct2-int8}" in capsys.readouterr().out
    assert main(["export-reader", "--reader", str(tmp_path)]) == 2
    assert f"no reader weights at {tmp_path / 'model.safetensors'}" in capsys.readouterr().err
