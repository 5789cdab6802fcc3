import pytest

from qa.answer.answer_type import PENALTY, agrees, wanted_type
from qa.config import Settings
from qa.pipeline import QAPipeline
from qa.reader.extractive import ReaderSpan
from qa.types import Article
from tests.fakes import FakeEmbedder, FakeReader


@pytest.mark.parametrize(
    "question, kind",
    [
        ("How much did Texaco pay for the stake?", "amount"),
        ("How many bags of cocoa arrived?", "count"),
        ("When does New START expire?", "time"),
        ("In what year was the plant opened?", "time"),
        ("Who is the Russian foreign minister?", "name"),
        ("Where did the talks take place?", "name"),
        ("What did Lavrov deny?", None),
        ("Why did prices fall?", None),
    ],
)
def test_the_kind_of_answer_a_question_wants(question, kind):
    assert wanted_type(question) == kind


@pytest.mark.parametrize(
    "kind, answer, ok",
    [
        ("amount", "3 billion dlrs", True),
        ("amount", "Pennzoil", False),
        ("count", "155,221 bags", True),
        ("count", "three", True),
        ("count", "two weeks", False),
        ("count", "March 24", False),
        ("amount", "U.S. Dollar loans", False),
        ("time", "next March", True),
        ("time", "the ministry", False),
        ("name", "Sergey V. Lavrov", True),
        ("name", "the resort", False),
        (None, "anything", True),
    ],
)
def test_answers_agree_with_a_kind(kind, answer, ok):
    assert agrees(kind, answer) is ok


class NameThenAmountReader(FakeReader):
    """Reads the company name first (0.6), the amount second (0.5)."""

    def read(self, question, passages, n_best=5):
        text = passages[0]
        name, amount = text.index("Pennzoil"), text.index("3 billion dlrs")
        return [
            ReaderSpan(0, name, name + len("Pennzoil"), "Pennzoil", 0.6),
            ReaderSpan(0, amount, amount + len("3 billion dlrs"), "3 billion dlrs", 0.5),
        ]


def test_a_span_of_the_wanted_kind_goes_first(tmp_path):
    p = QAPipeline(
        Settings(index_dir=tmp_path / "idx", no_answer_threshold=0.01), FakeEmbedder(), NameThenAmountReader()
    )
    p.build_from_articles([Article("t", "Texaco", "Texaco agreed to pay Pennzoil 3 billion dlrs to settle the suit.")])
    paid = p.ask("How much did Texaco agree to pay?", top_k=2)
    assert [a.text for a in paid.answers] == ["3 billion dlrs", "Pennzoil"]
    assert paid.answers[1].score == pytest.approx(PENALTY * 0.6)
    # A question that does not say what kind it wants keeps the reader's order.
    assert p.ask("What did Texaco agree to?", top_k=2).answers[0].text == "Pennzoil"
