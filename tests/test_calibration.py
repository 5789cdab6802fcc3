"""The calibration saved beside the reader: threshold, rank discount and confidence curve."""

import json
import time
from itertools import pairwise

import numpy as np
from fastapi.testclient import TestClient

from qa.answer.calibration import CALIBRATION_FILE, Calibration, fit_confidence_curve, load_calibration
from qa.config import Settings
from qa.pipeline import QAPipeline
from qa.serve.app import create_app
from tests.fakes import FakeEmbedder, FakeReader

CURVE = ((0.01, 0.2), (0.1, 0.5), (0.5, 0.8), (0.9, 0.95))


def confidence_of(calibration: Calibration, score: float) -> float:
    """The confidence of a calibrated score (None would fail here, not in arithmetic)."""
    confidence = calibration.confidence(score)
    assert confidence is not None
    return confidence


def test_calibration_is_read_beside_the_reader_and_settings_override_it(tmp_path):
    (tmp_path / CALIBRATION_FILE).write_text('{"no_answer_threshold": 0.25, "rank_discount": 0.75}')
    tuned = load_calibration(Settings(reader_path=tmp_path))
    assert (tuned.no_answer_threshold, tuned.rank_discount) == (0.25, 0.75)
    overridden = load_calibration(Settings(reader_path=tmp_path, rank_discount=0.0, no_answer_threshold=0.5))
    assert (overridden.no_answer_threshold, overridden.rank_discount) == (0.5, 0.0)
    (tmp_path / CALIBRATION_FILE).write_text('{"no_answer_threshold": 0.25}')  # older files: no discount
    assert load_calibration(Settings(reader_path=tmp_path)).rank_discount == 0.0


def test_reading_another_number_of_passages_than_tuned_for_is_warned_about(tmp_path, caplog):
    (tmp_path / CALIBRATION_FILE).write_text('{"no_answer_threshold": 0.25, "read_k": 10}')
    load_calibration(Settings(reader_path=tmp_path, read_k=10))
    assert "tuned reading" not in caplog.text
    load_calibration(Settings(reader_path=tmp_path, read_k=5))
    assert "tuned reading 10 passages, this server reads 5" in caplog.text


def test_the_stop_score_holds_only_for_the_passages_read_first_it_was_tuned_for(tmp_path, caplog):
    (tmp_path / CALIBRATION_FILE).write_text('{"no_answer_threshold": 0.002, "stop_score": 0.02, "read_first": 3}')
    assert load_calibration(Settings(reader_path=tmp_path, read_first=3)).stop_score == 0.02
    assert "every passage is read" not in caplog.text
    # Tuned for 3 first: with 5 first the score means something else, so the cascade is off.
    assert load_calibration(Settings(reader_path=tmp_path, read_first=5)).stop_score is None
    assert "tuned reading 3 passages first, this server reads 5" in caplog.text
    # Set by hand, it holds whatever QA_READ_FIRST is.
    assert load_calibration(Settings(reader_path=tmp_path, read_first=5, read_stop_score=0.1)).stop_score == 0.1
    (tmp_path / CALIBRATION_FILE).write_text('{"no_answer_threshold": 0.002}')  # older files: no cascade
    assert load_calibration(Settings(reader_path=tmp_path)).stop_score is None


def test_confidence_is_read_off_the_curve_flat_past_its_ends():
    calibration = Calibration(0.01, 1.5, CURVE)
    assert calibration.confidence(0.1) == 0.5
    assert calibration.confidence(0.001) == 0.2 and calibration.confidence(0.99) == 0.95
    # Between points: interpolated in log score, so rising with the score.
    between = [confidence_of(calibration, s) for s in np.geomspace(0.01, 0.9, 50)]
    assert all(a <= b for a, b in pairwise(between))
    assert 0.5 < confidence_of(calibration, np.sqrt(0.1 * 0.5)) < 0.8
    assert Calibration(0.01).confidence(0.5) is None  # not calibrated: no made-up number


def test_fitted_curve_rises_and_matches_the_data():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.001, 1.0, 4000)
    right = rng.uniform(size=4000) < scores  # the chance of being right is the score itself
    scores[:50] = 0.0  # questions with no answer at all are left out
    curve = fit_confidence_curve(scores, right, bins=20)
    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in pairwise(curve))
    calibration = Calibration(0.0, 0.0, tuple(curve))
    for s in (0.1, 0.3, 0.5, 0.7, 0.9):
        assert abs(confidence_of(calibration, s) - s) < 0.1


def test_a_curve_fitted_on_tiny_scores_keeps_them_positive_and_loads(tmp_path):
    # An int8 reader's lowest answers score under 1e-6: rounding them away made a curve the
    # loader rightly refused (a score of 0), so those answers carried no confidence at all.
    scores = np.geomspace(1e-9, 1.0, 2000)
    right = np.concatenate([np.arange(100) < 1 + 5 * g for g in range(20)])  # share right rising with score
    curve = fit_confidence_curve(scores, right, bins=20)
    assert curve[0][0] < 1e-6 and all(score > 0 for score, _ in curve)
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"no_answer_threshold": 0.01, "confidence_curve": curve}))
    assert load_calibration(Settings(reader_path=tmp_path)).confidence_curve == tuple(curve)


def test_fitted_curve_pools_a_dip_instead_of_falling():
    scores = np.repeat([0.1, 0.2, 0.3, 0.4], 100)
    right = np.concatenate([np.arange(100) < k for k in (20, 60, 40, 90)])  # 0.2, 0.6, 0.4, 0.9
    curve = fit_confidence_curve(scores, right, bins=4)
    assert [share for _, share in curve] == [0.2, 0.5, 0.9]


def test_a_bad_curve_or_another_discount_gives_no_confidence(tmp_path):
    path = tmp_path / CALIBRATION_FILE
    path.write_text(json.dumps({"no_answer_threshold": 0.01, "rank_discount": 1.5, "confidence_curve": CURVE}))
    assert load_calibration(Settings(reader_path=tmp_path)).confidence(0.1) == 0.5
    # Scores under another discount are not the scores the curve was measured on.
    assert load_calibration(Settings(reader_path=tmp_path, rank_discount=0.0)).confidence(0.1) is None
    assert load_calibration(Settings(reader_path=tmp_path, no_answer_threshold=0.2)).confidence(0.1) == 0.5
    for bad in ([[0.5, 0.8], [0.1, 0.9]], [[0.1, 0.9], [0.5, 0.2]], [[0.0, 0.1]], [[0.1, 1.5]], "x", [[1]]):
        path.write_text(json.dumps({"no_answer_threshold": 0.01, "rank_discount": 1.5, "confidence_curve": bad}))
        loaded = load_calibration(Settings(reader_path=tmp_path))
        assert loaded.no_answer_threshold == 0.01 and loaded.confidence(0.1) is None, bad


def test_ask_returns_the_calibrated_confidence_beside_the_score(tmp_path):
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"no_answer_threshold": 0.5, "confidence_curve": CURVE}))
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("Treaty news\nNew Start is set to expire in 2021, officials said.")
    s = Settings(index_dir=tmp_path / "index", seeds_dir=seeds, reader_path=tmp_path)
    with TestClient(create_app(s, QAPipeline(s, FakeEmbedder(), FakeReader()))) as client:
        for _ in range(200):
            if client.get("/healthz").status_code == 200:
                break
            time.sleep(0.05)
        best = client.post("/ask", json={"question": "When does it expire?"}).json()["answers"][0]
    assert best["text"] == "2021"
    assert best["confidence"] == round(confidence_of(Calibration(0.5, 0.0, CURVE), best["score"]), 3)


def test_an_int8_reader_is_scored_with_its_own_calibration(tmp_path):
    saved = {
        "no_answer_threshold": 0.003,
        "rank_discount": 1.5,
        "confidence_curve": [[0.001, 0.1], [0.5, 0.9]],
        "backends": {"onnx-int8": {"no_answer_threshold": 0.002, "confidence_curve": [[0.001, 0.2], [0.4, 0.9]]}},
    }
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(saved))
    settings = Settings(reader_path=tmp_path)
    int8 = load_calibration(settings, "onnx-int8")
    assert (int8.no_answer_threshold, int8.rank_discount) == (0.002, 1.5)  # what it does not tune is shared
    assert int8.confidence_curve == ((0.001, 0.2), (0.4, 0.9))
    for backend in (None, "torch-fp32", "onnx-fp32", "torch-bf16"):  # the float readers share one
        shared = load_calibration(settings, backend)
        assert (shared.no_answer_threshold, shared.confidence_curve) == (0.003, ((0.001, 0.1), (0.5, 0.9)))
    # The pipeline takes the calibration of the backend its reader runs on.
    from qa.reader.extractive import ExtractiveReader

    class Int8Model:
        name = "onnx-int8"

    pipeline = QAPipeline(
        Settings(index_dir=tmp_path / "index", reader_path=tmp_path),
        FakeEmbedder(),
        ExtractiveReader(None, Int8Model()),  # type: ignore[arg-type]
    )
    assert pipeline.threshold == 0.002
    stand_in = QAPipeline(Settings(index_dir=tmp_path / "i2", reader_path=tmp_path), FakeEmbedder(), FakeReader())
    assert stand_in.threshold == 0.003
