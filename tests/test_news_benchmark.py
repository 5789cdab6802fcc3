"""The news benchmark (bench/news) holds what its README promises, against the articles as ingested."""

import json
from collections import Counter
from pathlib import Path

import pytest

from qa.eval.gold import load_gold
from qa.ingest.files import ingest_paths

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT / "bench" / "news"
REUTERS = ROOT.parent / "shared" / "data" / "reuters21578" / "reuters21578.jsonl"
SPLITS = ("dev", "test")


def _rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (NEWS / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_the_benchmark_has_the_size_and_mix_it_promises():
    rows = [r for split in SPLITS for r in _rows(split)]
    for split in SPLITS:
        load_gold(NEWS / f"{split}.jsonl")  # the loader `qa eval` uses accepts both
    assert len(rows) >= 600 and len({r["id"] for r in rows}) == len(rows)
    tags = Counter(t for r in rows for t in r.get("tags", []))
    assert tags["unanswerable"] >= 0.15 * len(rows) and tags["followup"] >= 100
    assert tags["shared_name"] >= 30 and tags["present"] >= 15
    answerable = [r for r in rows if r["answers"]]
    assert sum(1 for r in answerable if r.get("paraphrased")) >= 0.25 * len(answerable)
    categories = Counter(r["category"] for r in rows)
    assert all(categories[c] >= 30 for c in ("who", "when", "where", "how_many", "how_much")), categories
    for r in rows:
        assert ("unanswerable" in r.get("tags", [])) == (not r["answers"]) == (r["article_id"] is None), r["id"]
        assert bool(r.get("history")) == ("followup" in r.get("tags", [])), r["id"]


def test_dev_and_test_share_no_article():
    def articles(split: str) -> set[str]:
        return {str(r.get("article_id") or r.get("near_article_id")) for r in _rows(split)}

    assert not articles("dev") & articles("test")


@pytest.mark.skipif(not REUTERS.is_file(), reason="needs ../shared/data/reuters21578 (development data)")
def test_every_answer_is_verbatim_in_its_article_and_unanswerables_are_absent():
    articles = {a.id: a for a in ingest_paths([ROOT / "seeds" / "articles", REUTERS]).articles}
    everything = "\n".join(f"{a.title}\n{a.text}" for a in articles.values()).lower()
    for r in (r for split in SPLITS for r in _rows(split)):
        if r["answers"]:
            text = articles[r["article_id"]].text
            for answer in r["answers"] + [t["answer"] for t in r.get("history", [])]:
                assert answer in text, (r["id"], answer)
        else:
            assert r["near_article_id"] in articles, r["id"]
            assert r["absent_terms"] and not [t for t in r["absent_terms"] if t.lower() in everything], r["id"]
