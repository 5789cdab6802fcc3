import csv
import json

import pytest

from qa.config import Settings
from qa.eval.runner import evaluate, write_report
from qa.eval.gold import GoldFormatError, load_gold
from qa.pipeline import QAPipeline

from tests.fakes import FakeEmbedder, FakeReader

SQUAD = {
    "version": "1.1",
    "data": [
        {"title": "Treaty", "paragraphs": [
            {"context": "Talks were held in Sochi.", "qas": [{"id": "q1", "question": "Where were talks held?", "answers": [{"text": "Sochi", "answer_start": 19}]}]},
            {"context": "New Start is set to expire in 2021.", "qas": [
                {"id": "q2", "question": "When does New Start expire?", "answers": [{"text": "2021", "answer_start": 30}, {"text": "in 2021", "answer_start": 27}]},
                {"id": "q3", "question": "Who won the cup?", "answers": [], "is_impossible": True},
            ]},
        ]},
        {"title": "Planes", "paragraphs": [
            {"context": "The A380 first flew in 2005 from Toulouse.", "qas": [{"id": "q4", "question": "When did the A380 first fly?", "answers": [{"text": "2005", "answer_start": 23}]}]},
        ]},
    ],
}


def test_squad_gold_becomes_its_own_corpus_with_exact_spans(tmp_path):
    path = tmp_path / "gold.json"
    path.write_text(json.dumps(SQUAD))
    gold = load_gold(path)
    assert [a.title for a in gold.articles] == ["Treaty", "Planes"]
    by_id = {q.id: q for q in gold.questions}
    text = {a.id: a.text for a in gold.articles}
    for q in gold.questions:
        for (s, e), ans in zip(q.answer_spans, q.answers):
            assert text[q.article_id][s:e] == ans
    assert by_id["q3"].answers == ()


def test_jsonl_gold_and_its_errors_name_the_line(tmp_path):
    good = tmp_path / "g.jsonl"
    good.write_text('{"question": "When?", "answers": ["2021"]}\n\n{"id": "n", "question": "Who won?", "answers": []}\n')
    gold = load_gold(good)
    assert [(q.id, q.answers) for q in gold.questions] == [("line-1", ("2021",)), ("n", ())]
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"question": "ok", "answers": []}\n{"question": "x", "answers": "2021"}\n')
    with pytest.raises(GoldFormatError, match=r"b.jsonl:2: 'answers'"):
        load_gold(bad)
    bad.write_text('{"question": "ok", "answers": []}\n{oops\n')
    with pytest.raises(GoldFormatError, match=r"b.jsonl:2: not valid JSON"):
        load_gold(bad)
    broken = tmp_path / "s.json"
    broken.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"qas": []}]}]}))
    with pytest.raises(GoldFormatError, match=r"data\[0\].paragraphs\[0\]: missing field 'context'"):
        load_gold(broken)


def test_evaluate_scores_answers_retrieval_and_abstention(tmp_path):
    path = tmp_path / "gold.json"
    path.write_text(json.dumps(SQUAD))
    gold = load_gold(path)
    pipeline = QAPipeline(Settings(index_dir=tmp_path / "idx", no_answer_threshold=0.5), FakeEmbedder(), FakeReader())
    pipeline.build_from_articles(gold.articles)
    results, summary = evaluate(pipeline, gold, k=10, progress=False)
    by_id = {r.id: r for r in results}
    # The fake reader answers the first 4-digit number: right for q2 and q4, wrong for q1.
    assert by_id["q2"].em == 1.0 and by_id["q4"].em == 1.0 and by_id["q1"].em == 0.0
    assert by_id["q1"].miss == "reader" and by_id["q1"].gold_rank is not None
    assert by_id["q3"].answerable is False and by_id["q3"].miss == "answered-unanswerable"
    assert summary["questions"] == 4 and summary["exact_match"] == 50.0
    assert summary["recall@10"] == 100.0 and summary["no_answer_recall"] == 0.0
    assert summary["misses"] == {"reader": 1, "answered-unanswerable": 1}

    out = tmp_path / "out"
    write_report(out, results, summary)
    rows = list(csv.DictReader(open(out / "questions.csv")))
    assert [r["id"] for r in rows] == ["q1", "q2", "q3", "q4"]
    assert {"question", "prediction", "gold", "score", "em", "f1", "gold_rank"} <= set(rows[0])
    assert json.loads((out / "summary.json").read_text())["f1"] == summary["f1"]
