"""Dates: a period named in the question, the newest article for questions about the present,
and doubt shown for answers below the calibrated confidence cut (fake models)."""

import pytest

from qa.answer.recency import asks_about_present
from qa.config import Settings
from qa.pipeline import QAPipeline
from qa.reader.extractive import ReaderSpan
from qa.retrieval.hybrid import Filters
from qa.retrieval.period import period_in
from qa.types import Article
from tests.fakes import FakeEmbedder, FakeReader

# Three reports that disagree across dates (the fake reader answers the first 4-digit number).
HEADCOUNT = [
    Article("old", "Acme hires", "Acme staff headcount stands at 1200 people at the Leeds plant.", date="2012-03-01"),
    Article("mid", "Acme grows", "Acme staff headcount stands at 2300 people at the Leeds plant.", date="2016-07-09"),
    Article("new", "Acme expands", "Acme staff headcount stands at 3400 people at the Leeds plant.", date="2021-11-20"),
    Article("none", "Acme undated", "Acme staff headcount stands at 9999 people, a leaflet said.", date=None),
]


@pytest.fixture
def pipeline(tmp_path):
    # Every passage read at once: these tests are about dates; the cascade's rule for dated
    # questions is tested in test_reading_cascade.py.
    p = QAPipeline(Settings(index_dir=tmp_path / "idx", read_first=0), FakeEmbedder(), FakeReader())
    p.build_from_articles(HEADCOUNT)
    return p


@pytest.mark.parametrize(
    "question, expected",
    [
        ("Who was the US secretary of state in 2015?", ("2015-01-01", "2015-12-31", False)),
        ("Who is the US secretary of state as of May 2019?", (None, "2019-05-31", True)),
        ("What did Apple release before 2007?", (None, "2006-12-31", False)),
        ("What has Apple released since 2010?", ("2010-01-01", None, False)),
        ("What happened after March 2008?", ("2008-04-01", None, False)),
    ],
)
def test_periods_in_questions(question, expected):
    p = period_in(question)
    assert p is not None
    assert (p.date_from, p.date_to, p.as_of) == expected
    assert p.phrase not in p.remove_from(question) and p.remove_from(question).endswith("?")


@pytest.mark.parametrize(
    "question", ["Who won the 2022 World Cup?", "Who interfered in 2016 elections?", "When does it expire?"]
)
def test_a_year_that_is_not_a_period_is_left_alone(question):
    assert period_in(question) is None


def test_present_tense_questions():
    assert asks_about_present("Who is the US secretary of state?")
    assert asks_about_present("What does New START limit?")
    assert not asks_about_present("Who was the US secretary of state?")
    assert not asks_about_present("Who is the best player of 2018?")  # a year of its own: not "now"
    assert not asks_about_present("Who won the 2022 World Cup?")


def test_present_tense_gets_the_newest_article_first(pipeline):
    question = "What is the Acme staff headcount?"
    plain = pipeline.answer_from_hits(question, pipeline.retrieve(question, 10), 3, prefer_recent=False)[0]
    assert plain[0].text != "3400"  # the reader's own order puts an older report first
    result = pipeline.ask(question, top_k=3)
    assert result.answers[0].text == "3400" and result.answers[0].article.date == "2021-11-20"
    assert result.newest_first
    # Past tense: the reader's order stands, the newest is not pushed first.
    past = pipeline.ask("What was the Acme staff headcount?", top_k=3)
    assert (
        past.answers[0].text
        == pipeline.answer_from_hits(
            "What was the Acme staff headcount?",
            pipeline.retrieve("What was the Acme staff headcount?", 10),
            1,
            prefer_recent=False,
        )[0][0].text
    )


def test_a_period_in_the_question_puts_its_articles_first_and_drops_none(pipeline):
    result = pipeline.ask("What was the Acme staff headcount in 2016?", top_k=4)
    assert result.answers[0].text == "2300" and not result.newest_first
    assert (result.period.date_from, result.period.date_to) == ("2016-01-01", "2016-12-31")
    assert {a.text for a in result.answers} == {"1200", "2300", "3400", "9999"}  # nothing filtered out
    # No article dated then: an event's year is not a story's date, so the others still answer.
    assert not pipeline.ask("What was the Acme staff headcount in 1999?").no_answer
    # A filter the caller gives wins over the question's words.
    given = pipeline.ask("What was the Acme staff headcount in 2016?", filters=Filters(date_from="2020-01-01"))
    assert given.period is None and [a.text for a in given.answers] == ["3400"]


def test_as_of_filters_by_date_and_keeps_undated_articles(pipeline):
    as_of = pipeline.ask("What is the Acme staff headcount as of 2017?", top_k=4)
    assert as_of.answers[0].text == "2300"  # the newest up to then, not the 2021 figure
    assert as_of.period.as_of and {a.text for a in as_of.answers} == {"1200", "2300", "9999"}
    assert pipeline.ask("What is the Acme staff headcount as of 1999?", top_k=4).answers[0].text == "9999"


class DoubtfulReader(FakeReader):
    """The fake reader's spans at a score the shipped calibration reads as a guess."""

    def read(self, question, passages, n_best=5):
        return [
            ReaderSpan(s.passage, s.start, s.end, s.text, 0.01 - 0.001 * s.passage)
            for s in super().read(question, passages, n_best)
        ]


def test_unsure_answers_come_with_the_best_candidates(tmp_path):
    p = QAPipeline(Settings(index_dir=tmp_path / "idx", no_answer_threshold=0.001), FakeEmbedder(), DoubtfulReader())
    p.build_from_articles(HEADCOUNT)
    assert p.calibration.unsure(0.01) and not p.calibration.unsure(0.5)
    result = p.ask("What was the Acme staff headcount?", top_k=1)
    assert result.unsure and not result.no_answer
    assert len(result.answers) == 3  # candidates, whatever top_k asked for
    assert all(a.confidence is not None and a.confidence < p.calibration.unsure_below for a in result.answers)
    sure = QAPipeline(Settings(index_dir=tmp_path / "idx2"), FakeEmbedder(), FakeReader())
    sure.build_from_articles(HEADCOUNT)
    confident = sure.ask("What was the Acme staff headcount?", top_k=1)
    assert not confident.unsure and len(confident.answers) == 1
