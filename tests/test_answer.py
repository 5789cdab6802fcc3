import pytest

from qa.answer.assemble import assemble
from qa.config import Settings
from qa.eval.metrics import exact_match, f1_score, normalize_answer
from qa.pipeline import QAPipeline, QuestionError
from qa.reader.extractive import ReaderSpan
from qa.retrieval.followup import is_follow_up, retrieval_query
from qa.types import Article, Chunk, Hit
from tests.fakes import FakeEmbedder, FakeReader

ART = Article("a1", "T", "Sergey V. Lavrov met Mike Pompeo. Lavrov said New Start expires in 2021.")
C1 = Chunk(0, "a1", 0, 33, ART.text[0:33])
C2 = Chunk(1, "a1", 0, len(ART.text), ART.text)


def test_spans_map_to_article_offsets_and_duplicates_merge():
    hits = [Hit(C1, 1.0), Hit(C2, 0.9)]
    spans = [
        ReaderSpan(0, 0, 16, "Sergey V. Lavrov", 0.8),
        ReaderSpan(1, 0, 16, "Sergey V. Lavrov", 0.7),  # same place, overlapping chunk
        ReaderSpan(1, 10, 16, "Lavrov", 0.6),  # inside the better answer
        ReaderSpan(1, 34, 40, "Lavrov", 0.5),  # same words elsewhere
        ReaderSpan(1, 67, 71, "2021", 0.4),
    ]
    answers, no_answer = assemble(spans, hits, {"a1": ART}, top_k=5, threshold=0.1)
    assert not no_answer
    assert [a.text for a in answers] == ["Sergey V. Lavrov", "2021"]
    for a in answers:
        assert ART.text[a.start : a.end] == a.text
        assert a.passage[a.start - a.passage_start : a.end - a.passage_start] == a.text


def test_rank_discount_prefers_the_higher_ranked_passage_and_scales_the_score():
    hits = [Hit(C1, 1.0), Hit(C2, 0.9)]
    spans = [ReaderSpan(0, 0, 16, "Sergey V. Lavrov", 0.5), ReaderSpan(1, 67, 71, "2021", 0.6)]
    plain, _ = assemble(spans, hits, {"a1": ART}, top_k=2, threshold=0.0)
    assert [a.text for a in plain] == ["2021", "Sergey V. Lavrov"]
    discounted, _ = assemble(spans, hits, {"a1": ART}, top_k=2, threshold=0.0, rank_discount=1.0)
    assert [(a.text, a.score) for a in discounted] == [("Sergey V. Lavrov", 0.5), ("2021", 0.3)]
    # The threshold applies to the discounted score.
    assert [a.text for a in assemble(spans, hits, {"a1": ART}, 2, 0.4, 1.0)[0]] == ["Sergey V. Lavrov"]


def test_below_threshold_is_no_answer():
    answers, no_answer = assemble([ReaderSpan(0, 0, 6, "Sergey", 0.05)], [Hit(C1, 1.0)], {"a1": ART}, 3, 0.1)
    assert no_answer and answers == []
    assert assemble([], [], {}, 3, 0.1) == ([], True)


def test_official_normalisation():
    assert normalize_answer("The  U.S.-Russia, talks!") == "usrussia talks"
    assert exact_match("the 2021", "2021") == 1.0
    assert f1_score("in 2021", "2021") == pytest.approx(2 / 3)
    assert f1_score("", "x") == 0.0


def test_follow_ups_borrow_the_previous_question():
    assert is_follow_up("When does it expire?")
    assert not is_follow_up("When does New START expire?")
    q = retrieval_query("When does it expire?", ["Who is Lavrov?", "What does New START limit?"])
    assert q.startswith("When does it expire?") and "New" in q and "START" in q and "Lavrov" not in q
    assert (
        retrieval_query("Who won the 2022 World Cup?", ["What does New START limit?"]) == "Who won the 2022 World Cup?"
    )


def test_pipeline_checks_questions(tmp_path):
    p = QAPipeline(Settings(index_dir=tmp_path), embedder=FakeEmbedder(), reader=FakeReader())
    with pytest.raises(QuestionError, match="empty"):
        p.check_question("  \n ")
    with pytest.raises(QuestionError, match="limit"):
        p.check_question("x" * 5000)
