"""Reading less: the cascade reads the first passages alone and the rest only when their best
answer is not sure; sentence windows read part of each passage with exact offsets; every
question says what it cost, stage by stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from qa.config import Settings
from qa.pipeline import QAPipeline, first_suffice
from qa.reader.extractive import ReaderSpan
from qa.reader.focus import focus_windows
from qa.types import Article
from tests.fakes import FakeEmbedder, FakeReader


class CountingReader(FakeReader):
    """FakeReader that records how many passages each read was given (read_many reads each alone)."""

    def __init__(self) -> None:
        self.reads: list[int] = []

    def read(self, question: str, passages: Sequence[str], n_best: int = 5) -> list[ReaderSpan]:
        self.reads.append(len(passages))
        return super().read(question, passages, n_best)


# Ten articles about the same treaty; only those with a year hold an answer (FakeReader reads years).
def articles(with_year: set[int]) -> list[Article]:
    return [
        Article(
            f"a{i}",
            f"Treaty report {i}",
            f"The arms treaty report number {i} discusses warheads and limits. "
            + (f"It was signed in {2010 + i}." if i in with_year else "It gives no date."),
        )
        for i in range(10)
    ]


def pipeline(
    tmp_path, with_year: set[int], stop: float | None, read_first: int = 3
) -> tuple[QAPipeline, CountingReader]:
    reader = CountingReader()
    settings = Settings(index_dir=tmp_path, read_first=read_first, read_stop_score=stop, rank_discount=0.0)
    p = QAPipeline(settings, embedder=FakeEmbedder(), reader=reader)
    p.build_from_articles(articles(with_year))
    return p, reader


def test_a_sure_answer_in_the_first_passages_ends_the_reading(tmp_path):
    p, reader = pipeline(tmp_path, set(range(10)), stop=0.5)
    result = p.ask("When does the arms treaty expire?")
    assert reader.reads == [3]  # the first three passages, nothing more
    assert result.answers and result.answers[0].text.startswith("20")


def test_an_unsure_answer_reads_every_passage(tmp_path):
    p, reader = pipeline(tmp_path, set(range(10)), stop=0.95)  # FakeReader never scores 0.95
    p.ask("When does the arms treaty expire?")
    assert reader.reads == [3, 10]


def test_no_answer_is_said_only_after_reading_every_passage(tmp_path):
    p, reader = pipeline(tmp_path, set(), stop=0.5)
    result = p.ask("When does the arms treaty expire?")
    assert result.no_answer and reader.reads == [3, 10]


def test_an_answer_beyond_the_first_passages_is_found(tmp_path):
    question = "When does the arms treaty expire?"
    for i in range(10):  # an article with the only answer that retrieval ranks below the first three
        p, reader = pipeline(tmp_path / str(i), {i}, stop=0.5)
        ranked = [h.chunk.article_id for h in p.retrieve(question, 10).hits]
        if ranked.index(f"a{i}") >= 3:
            break
    else:
        pytest.fail("retrieval put every article in the first three")
    result = p.ask(question)
    assert reader.reads == [3, 10]
    assert result.answers[0].article.id == f"a{i}"


def test_without_a_stop_score_or_with_read_first_0_every_passage_is_read_at_once(tmp_path):
    # A reader folder whose calibration has no stop score (one made before the cascade).
    (tmp_path / "reader").mkdir()
    (tmp_path / "reader" / "calibration.json").write_text('{"no_answer_threshold": 0.2}')
    for stop, read_first in ((None, 3), (0.5, 0)):
        reader = CountingReader()
        settings = Settings(
            index_dir=tmp_path / f"{stop}-{read_first}",
            reader_path=tmp_path / "reader",
            read_first=read_first,
            read_stop_score=stop,
        )
        p = QAPipeline(settings, embedder=FakeEmbedder(), reader=reader)
        p.build_from_articles(articles(set(range(10))))
        p.ask("When does the arms treaty expire?")
        assert reader.reads == [10]


def dated(tmp_path, question: str, dates: dict[int, str]) -> tuple[QAPipeline, CountingReader]:
    """A pipeline over the ten articles, each with an answer, the articles at these retrieval ranks
    for `question` dated so (dates do not move retrieval: the same index is built twice)."""
    probe, _ = pipeline(tmp_path / "probe", set(range(10)), stop=0.5)
    ranked = [h.chunk.article_id for h in probe.retrieve(question, 10).hits]
    reader = CountingReader()
    p = QAPipeline(
        Settings(index_dir=tmp_path / "dated", read_first=3, read_stop_score=0.5, rank_discount=0.0),
        embedder=FakeEmbedder(),
        reader=reader,
    )
    p.build_from_articles([replace(a, date=dates.get(ranked.index(a.id))) for a in articles(set(range(10)))])
    assert [h.chunk.article_id for h in p.retrieve(question, 10).hits] == ranked
    return p, reader


def test_a_question_about_the_present_reads_on_when_a_skipped_passage_is_newer(tmp_path):
    question = "When is the arms treaty set to expire?"  # present tense: the newest article's answer first
    first_three = {0: "2019-01-01", 1: "2019-02-01", 2: "2019-03-01"}
    p, reader = dated(tmp_path / "newer", question, {**first_three, 8: "2021-06-01"})
    p.ask(question)
    # All ten at once: the dates say so before anything is read (then each article alone, for the order).
    assert reader.reads[0] == 10
    p, reader = dated(tmp_path / "older", question, {**first_three, 8: "2018-06-01"})
    p.ask(question)
    assert reader.reads[0] == 3 and 10 not in reader.reads


def test_a_period_question_reads_on_when_only_a_skipped_passage_is_dated_in_it(tmp_path):
    question = "When did the arms treaty expire in 2015?"
    p, reader = dated(tmp_path / "skipped", question, {0: "2019-01-01", 1: "2019-02-01", 8: "2015-06-01"})
    p.ask(question)
    assert reader.reads[0] == 10
    p, reader = dated(tmp_path / "read", question, {0: "2019-01-01", 1: "2015-02-01", 8: "2015-06-01"})
    p.ask(question)
    assert reader.reads[0] == 3 and 10 not in reader.reads


def test_the_stop_rule_weighs_answers_as_ranking_does():
    spans = [ReaderSpan(2, 0, 4, "2021", 0.5)]  # third passage: 0.5 x 3 ** -1 = 0.167
    assert first_suffice(spans, rank_discount=0.0, stop=0.4)
    assert not first_suffice(spans, rank_discount=1.0, stop=0.4)
    assert not first_suffice([], rank_discount=0.0, stop=0.0001)


def test_timing_names_every_stage_and_they_add_up(tmp_path):
    p, _ = pipeline(tmp_path, set(range(10)), stop=0.5)
    timing = p.ask("When does the arms treaty expire?").timing_ms
    stages = ("embed", "retrieve", "tokenize", "read", "assemble")
    assert set(timing) == {*stages, "total"}
    assert all(timing[s] >= 0 for s in stages)
    assert sum(timing[s] for s in stages) == pytest.approx(timing["total"], abs=0.05)


PASSAGE = (
    "Moscow and Washington met again on Tuesday. The talks were held in Geneva. "
    "The New START treaty expires in February 2021 unless it is extended. "
    "Both sides said they wanted more time. Officials declined to comment further."
)


def test_a_window_is_whole_sentences_around_the_one_with_the_question_words():
    (start, end), (s2, e2) = focus_windows("When does New START expire?", [PASSAGE, "Other text."], 120)
    window = PASSAGE[start:end]
    assert "The New START treaty expires in February 2021 unless it is extended." in window
    assert len(window) <= 120
    # Whole sentences: it starts a sentence and ends one.
    assert start == 0 or PASSAGE[start - 2 : start] == ". "
    assert window.endswith(".")
    assert (s2, e2) == (0, len("Other text."))  # short enough to read whole


def test_rare_question_words_choose_the_sentence_not_the_shared_topic_words():
    passages = [
        "Geneva talks on the treaty began. The treaty negotiators met in Geneva on Tuesday for a second round.",
        "Geneva talks on the treaty began. Delegates from Moscow arrived in Geneva late.",
    ]
    (start, end), _ = focus_windows("Which treaty negotiators met on Tuesday in Geneva?", passages, 70)
    assert passages[0][start:end] == "The treaty negotiators met in Geneva on Tuesday for a second round."


def test_windows_off_or_large_read_whole_passages():
    assert focus_windows("When?", [PASSAGE], 0) == [(0, len(PASSAGE))]
    assert focus_windows("When?", [PASSAGE], len(PASSAGE)) == [(0, len(PASSAGE))]


def test_answers_read_in_windows_keep_their_place_in_the_article(tmp_path):
    settings = Settings(index_dir=tmp_path, focus_chars=120, read_stop_score=None)
    p = QAPipeline(settings, embedder=FakeEmbedder(), reader=FakeReader())
    p.build_from_articles([Article("start", "New START", PASSAGE)])
    answer = p.ask("When does New START expire?").answers[0]
    assert answer.text == "2021"
    assert answer.article.text[answer.start : answer.end] == "2021"
    assert answer.passage == PASSAGE  # the whole passage is shown, not the window read
