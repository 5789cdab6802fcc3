"""The news gold set is consistent with the bundled articles as ingested."""

from pathlib import Path

from qa.eval.gold import load_gold
from qa.ingest.files import ingest_paths

ROOT = Path(__file__).resolve().parent.parent


def test_every_gold_answer_is_verbatim_in_its_ingested_article():
    articles = {a.id: a for a in ingest_paths([ROOT / "seeds" / "articles"]).articles}
    assert len(articles) == 164
    gold = load_gold(ROOT / "seeds" / "gold" / "news_gold.jsonl")
    answerable = [q for q in gold.questions if q.answers]
    assert len(gold.questions) >= 40 and len(answerable) < len(gold.questions)
    for q in answerable:
        assert q.article_id in articles, q
        for answer in q.answers:
            assert answer in articles[q.article_id].text, (q.id, answer)
    every_text = "\n".join(a.text for a in articles.values())
    assert "World Cup" in every_text  # the unanswerable World Cup question is a near miss, not off-topic


def test_every_follow_up_passage_is_in_its_ingested_article():
    from qa.eval.followups import load_followups

    articles = {a.id: a for a in ingest_paths([ROOT / "seeds" / "articles"]).articles}
    cases = load_followups(ROOT / "seeds" / "gold" / "followups.jsonl")
    assert len({c.id for c in cases}) == len(cases)
    for c in cases:
        assert c.history and all(t.question.strip() for t in c.history), c.id
        if c.passage:
            assert c.article_id is not None, c.id
            assert c.passage in articles[c.article_id].text, c.id
        else:
            assert c.article_id is None, c.id
