"""The news guard (make eval-news) fails below the committed baseline's interval, and only then."""

import json

from bench.news_eval import check_guard, record


def _summary(f1: float, followup_f1: float, precision: float | None, backend: str = "onnx-int8") -> dict:
    return {
        "reader_backend": backend,
        "intervals": {
            "f1": f1,
            "f1_95ci": [f1 - 5, f1 + 5],
            "no_answer_precision": precision,
            "no_answer_precision_95ci": None if precision is None else [precision - 10, precision + 10],
        },
        "groups": {"tag:followup": {"f1": followup_f1, "f1_95ci": [followup_f1 - 8, followup_f1 + 8]}},
    }


def test_the_guard_holds_within_the_interval_and_fails_below_it(tmp_path):
    baseline = tmp_path / "baseline.json"
    record(_summary(70.0, 74.0, 50.0), baseline)
    assert json.loads(baseline.read_text())["onnx-int8"]["f1"] == [70.0, [65.0, 75.0]]
    assert check_guard(_summary(66.0, 67.0, 41.0), baseline) == []  # lower, but within each interval
    failures = check_guard(_summary(64.9, 74.0, 50.0), baseline)
    assert len(failures) == 1 and failures[0].startswith("f1: 64.9 < 65.0")
    failures = check_guard(_summary(70.0, 65.0, 39.0), baseline)
    assert [f.split(": ")[0] for f in failures] == [
        "tag:followup f1",
        "no_answer_precision",
    ]
    assert check_guard(_summary(70.0, 74.0, None), baseline)  # it stopped declining at all


def test_a_backend_without_a_baseline_is_a_failure_that_says_how_to_record_one(tmp_path):
    baseline = tmp_path / "baseline.json"
    record(_summary(70.0, 74.0, 50.0), baseline)
    (failure,) = check_guard(_summary(70.0, 74.0, 50.0, backend="onnx-fp32"), baseline)
    assert "no baseline for reader backend onnx-fp32" in failure and "--record" in failure
