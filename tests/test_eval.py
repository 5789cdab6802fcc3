import csv
import json

import pytest

from qa.config import Settings
from qa.eval.gold import GoldFormatError, load_gold
from qa.eval.runner import evaluate, write_report
from qa.pipeline import QAPipeline
from qa.types import Article
from tests.fakes import FakeEmbedder, FakeReader

SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "Treaty",
            "paragraphs": [
                {
                    "context": "Talks were held in Sochi.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "Where were talks held?",
                            "answers": [{"text": "Sochi", "answer_start": 19}],
                        }
                    ],
                },
                {
                    "context": "New Start is set to expire in 2021.",
                    "qas": [
                        {
                            "id": "q2",
                            "question": "When does New Start expire?",
                            "answers": [{"text": "2021", "answer_start": 30}, {"text": "in 2021", "answer_start": 27}],
                        },
                        {"id": "q3", "question": "Who won the cup?", "answers": [], "is_impossible": True},
                    ],
                },
            ],
        },
        {
            "title": "Planes",
            "paragraphs": [
                {
                    "context": "The A380 first flew in 2005 from Toulouse.",
                    "qas": [
                        {
                            "id": "q4",
                            "question": "When did the A380 first fly?",
                            "answers": [{"text": "2005", "answer_start": 23}],
                        }
                    ],
                },
            ],
        },
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
        assert q.article_id is not None  # a SQuAD question's article is its own entry
        for (s, e), ans in zip(q.answer_spans, q.answers, strict=True):
            assert text[q.article_id][s:e] == ans
    assert by_id["q3"].answers == ()


def test_jsonl_gold_and_its_errors_name_the_line(tmp_path):
    good = tmp_path / "g.jsonl"
    good.write_text(
        '{"question": "When?", "answers": ["2021"]}\n\n{"id": "n", "question": "Who won?", "answers": []}\n'
    )
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


# Three CNN-style stories converted to SQuAD format with one title for all, as converted
# NewsQA/MRQA files have them. Each question's answer is a year only its own story holds.
NEWSQA_STORIES = [
    (
        "LONDON, England (CNN) -- The Thames Barrier, which protects central London from tidal surges, "
        "was opened in 1984 after eight years of building, officials said on Tuesday.",
        "When was the Thames Barrier opened?",
        "1984",
    ),
    (
        "ATLANTA, Georgia (CNN) -- The city's new streetcar line will carry its first passengers in 2014, "
        "two years later than planned, the transit authority announced.",
        "When will the Atlanta streetcar carry its first passengers?",
        "2014",
    ),
    (
        "NAIROBI, Kenya (CNN) -- Kenya's marathon team, which won gold in 2008, named three new runners "
        "for the coming season on Friday.",
        "When did Kenya's marathon team win gold?",
        "2008",
    ),
]


def _newsqa_squad(tmp_path, stories=NEWSQA_STORIES):
    data = [
        {
            "title": "newsqa",
            "paragraphs": [
                {
                    "context": c,
                    "qas": [{"id": f"n{i}", "question": q, "answers": [{"text": a, "answer_start": c.index(a)}]}],
                }
            ],
        }
        for i, (c, q, a) in enumerate(stories)
    ]
    path = tmp_path / "newsqa.json"
    path.write_text(json.dumps({"version": "1.1", "data": data}))
    return path


def test_squad_entries_sharing_a_title_stay_separate_articles(tmp_path):
    gold = load_gold(_newsqa_squad(tmp_path))
    assert len(gold.articles) == 3 and {a.title for a in gold.articles} == {"newsqa"}
    text = {a.id: a.text for a in gold.articles}
    for q, (context, _, answer) in zip(gold.questions, NEWSQA_STORIES, strict=True):
        assert q.article_id is not None
        assert text[q.article_id] == context
        ((s, e),) = q.answer_spans
        assert text[q.article_id][s:e] == answer
    # Every question is answered from its own story (the fake reader reads the first year of
    # the top passage); with the stories merged by title, two of three were answered wrongly.
    pipeline = QAPipeline(Settings(index_dir=tmp_path / "idx", no_answer_threshold=0.5), FakeEmbedder(), FakeReader())
    pipeline.build_from_articles(gold.articles)
    results, summary = evaluate(pipeline, gold, k=10, progress=False)
    assert summary["exact_match"] == 100.0 and summary["recall@1"] == 100.0, results


def test_entries_with_the_same_title_and_the_same_text_are_one_article(tmp_path):
    repeated = NEWSQA_STORIES + [(NEWSQA_STORIES[0][0], "Where is the Thames Barrier?", "London")]
    gold = load_gold(_newsqa_squad(tmp_path, repeated))
    assert len(gold.articles) == 3
    assert gold.questions[0].article_id == gold.questions[3].article_id


def _mrqa_lines():
    context = (
        "[DOC] [TLE] Storm closes ports [PAR] MIAMI, Florida (CNN) -- Hurricane Delia closed three ports "
        "on Sunday. [PAR] The storm is expected to reach Cuba by 2025 hours local time, forecasters said."
    )
    start = context.index("Hurricane Delia")
    second = (
        "BEIJING, China (CNN) -- The new airport opened in 2019 and handled 40 million passengers in its first year."
    )
    return [
        {"header": {"dataset": "NewsQA", "split": "dev"}},
        {
            "context": context,
            "qas": [
                {
                    "qid": "m1",
                    "question": "What closed three ports?",
                    "answers": ["Hurricane Delia"],
                    "detected_answers": [
                        {"text": "Hurricane Delia", "char_spans": [[start, start + len("Hurricane Delia") - 1]]}
                    ],
                },
                {
                    "qid": "m2",
                    "question": "By when should the storm reach Cuba?",
                    "answers": ["2025 hours"],
                    "detected_answers": [
                        {"text": "2025 hours", "char_spans": [[context.index("2025"), context.index("2025") + 9]]}
                    ],
                },
            ],
        },
        {
            "context": second,
            "qas": [
                {
                    "qid": "m3",
                    "question": "When did the airport open?",
                    "answers": ["2019"],
                    "detected_answers": [
                        {"text": "2019", "char_spans": [[second.index("2019"), second.index("2019") + 3]]}
                    ],
                }
            ],
        },
    ]


@pytest.mark.parametrize("gzipped", [False, True])
def test_mrqa_file_is_read_with_its_own_articles_and_exact_spans(tmp_path, gzipped):
    import gzip

    body = "\n".join(json.dumps(line) for line in _mrqa_lines()) + "\n"
    path = tmp_path / ("dev.jsonl.gz" if gzipped else "dev.jsonl")
    path.write_bytes(gzip.compress(body.encode()) if gzipped else body.encode())
    gold = load_gold(path)
    assert [q.id for q in gold.questions] == ["m1", "m2", "m3"]
    assert len(gold.articles) == 2 and gold.articles[0].source == "NewsQA"
    first = gold.articles[0]
    # Markers are blanks of their own length: offsets hold, [PAR] is a paragraph break.
    assert "[PAR]" not in first.text and "[TLE]" not in first.text and "\n\n" in first.text
    assert first.title == "Storm closes ports"
    assert len(first.text) == len(_mrqa_lines()[1]["context"])
    text = {a.id: a.text for a in gold.articles}
    for q in gold.questions:
        ((s, e),) = q.answer_spans
        assert q.article_id is not None
        assert text[q.article_id][s:e] == q.answers[0]
    pipeline = QAPipeline(Settings(index_dir=tmp_path / "idx", no_answer_threshold=0.5), FakeEmbedder(), FakeReader())
    pipeline.build_from_articles(gold.articles)
    results, summary = evaluate(pipeline, gold, k=10, progress=False)
    by_id = {r.id: r for r in results}
    assert by_id["m3"].em == 1.0 and by_id["m3"].gold_rank == 1


def test_mrqa_errors_name_the_line(tmp_path):
    lines = _mrqa_lines()
    lines[2]["qas"][0]["detected_answers"][0]["char_spans"] = [[5, 9999]]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    with pytest.raises(GoldFormatError, match=r"bad.jsonl:3: qas\[0\].detected_answers\[0\]: char span"):
        load_gold(path)
    path.write_text(json.dumps(lines[0]) + "\n{oops\n")
    with pytest.raises(GoldFormatError, match=r"bad.jsonl:2: not valid JSON"):
        load_gold(path)


def test_jsonl_gold_reads_conversations_categories_and_tags(tmp_path):
    path = tmp_path / "news.jsonl"
    rows = [
        {
            "id": "c1",
            "question": "When does it expire?",
            "answers": ["2031"],
            "history": [{"question": "Where was the treaty signed?", "answer": "Geneva"}],
            "category": "when",
            "paraphrased": True,
            "tags": ["followup"],
        },
        {"id": "u1", "question": "Who won?", "answers": [], "tags": ["unanswerable"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    first, second = load_gold(path).questions
    assert [(t.question, t.answer) for t in first.history] == [("Where was the treaty signed?", "Geneva")]
    assert first.category == "when" and first.tags == ("followup", "paraphrased")
    assert second.history == () and second.tags == ("unanswerable",)
    path.write_text(json.dumps({"question": "x", "answers": [], "history": [{"answer": "y"}]}))
    with pytest.raises(GoldFormatError, match=r"news.jsonl:1: each 'history' turn needs a 'question'"):
        load_gold(path)


CONVERSATION = [
    Article("treaty", "Orbital treaty", "The Orbital treaty was signed in Geneva. It expires in 2031."),
    Article("bridge", "Bridge", "When does the bridge licence expire? It expired in 1999; when does it expire now?"),
]


def test_evaluate_asks_follow_ups_with_their_history(tmp_path):
    """Scored through `ask`, as /ask answers: the history brings the treaty into retrieval;
    the same question without it is answered from the other story."""
    turn = {"question": "Where was the Orbital treaty signed?", "answer": "Geneva"}
    path = tmp_path / "conv.jsonl"
    rows = [
        {
            "id": "with",
            "question": "When does it expire?",
            "answers": ["2031"],
            "history": [turn],
            "tags": ["followup"],
        },
        {"id": "alone", "question": "When does it expire?", "answers": ["2031"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    pipeline = QAPipeline(Settings(index_dir=tmp_path / "idx", no_answer_threshold=0.5), FakeEmbedder(), FakeReader())
    pipeline.build_from_articles(CONVERSATION)
    results, summary = evaluate(pipeline, load_gold(path), progress=False)
    by_id = {r.id: r for r in results}
    assert (by_id["with"].prediction, by_id["with"].answer_article) == ("2031", "treaty")
    assert (by_id["alone"].prediction, by_id["alone"].answer_article) == ("1999", "bridge")
    assert summary["groups"]["tag:followup"]["f1"] == 100.0
    assert summary["intervals"]["f1"] == 50.0
