import pytest

from qa.eval.intervals import Scored, by_group, figures_with_intervals


def _results(right: int, wrong: int, abstained_right: int, abstained_wrong: int) -> list[Scored]:
    return (
        [Scored(1.0, 1.0, True, False)] * right
        + [Scored(0.0, 0.0, True, False)] * wrong
        + [Scored(1.0, 1.0, False, True)] * abstained_right  # unanswerable, abstained: right
        + [Scored(0.0, 0.0, True, True)] * abstained_wrong  # answerable, abstained: wrong
    )


def test_figures_and_their_intervals():
    figures = figures_with_intervals(_results(60, 20, 15, 5))
    assert figures["questions"] == 100
    assert figures["f1"] == 75.0 and figures["exact_match"] == 75.0
    assert figures["no_answer_precision"] == 75.0 and figures["no_answer_recall"] == 100.0
    low, high = figures["f1_95ci"]
    # 100 questions at 75%: the binomial standard error is 4.3 points, so about +-8.5.
    assert 63 < low < 70 < 80 < high < 87
    assert figures["no_answer_recall_95ci"] == [100.0, 100.0]


def test_more_questions_narrow_the_interval():
    small = figures_with_intervals(_results(60, 20, 15, 5))["f1_95ci"]
    large = figures_with_intervals(_results(600, 200, 150, 50))["f1_95ci"]
    assert large[1] - large[0] < 0.5 * (small[1] - small[0])


def test_undefined_figures_are_none_and_groups_are_split():
    answered_only = [Scored(1.0, 1.0, True, False), Scored(0.5, 0.0, True, False)]
    figures = figures_with_intervals(answered_only)
    assert figures["no_answer_precision"] is None and figures["no_answer_precision_95ci"] is None
    groups = by_group(answered_only, [["category:who"], ["category:when", "tag:followup"]])
    assert groups["category:who"]["f1"] == 100.0
    assert groups["tag:followup"]["f1"] == pytest.approx(50.0)
    assert set(groups) == {"category:who", "category:when", "tag:followup"}
