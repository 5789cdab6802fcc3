"""The real embedder and the shipped reader, end to end over the bundled articles."""

from pathlib import Path

import pytest

from qa.eval.gold import load_gold
from qa.eval.runner import evaluate
from qa.ingest.files import ingest_paths

pytestmark = pytest.mark.real_models

ROOT = Path(__file__).resolve().parent.parent
SEED_FILE = ROOT / "seeds" / "articles" / "000_bdb2fb7eb406ee43.txt"
NEWS_GOLD = ROOT / "seeds" / "gold" / "news_gold.jsonl"
BOILERPLATE = ["Loading ....", "Source link", "Please enter your comment!", "Please enter your name here"]


def test_new_start_expires_in_2021(seed_pipeline):
    result = seed_pipeline.ask("When does New START expire?")
    assert not result.no_answer
    best = result.answers[0]
    assert best.text == "2021"
    assert best.article.title.startswith("U.S.-Russia Talks Expose Deep Fissures")
    assert best.article.text[best.start : best.end] == "2021"
    assert best.passage[best.start - best.passage_start : best.end - best.passage_start] == "2021"
    assert 0.0 < best.score <= 1.0
    # The shipped reader is calibrated: the confidence shown is a share right, at least the
    # share right of the lowest answers it gives.
    calibration = seed_pipeline.calibration
    assert best.confidence is not None and 0.0 < best.confidence <= 1.0
    assert best.confidence >= calibration.confidence(calibration.no_answer_threshold)


def test_russian_foreign_minister_is_lavrov(seed_pipeline):
    # Another bundled article names Russia's finance minister (Alexei Kudrin); a reader trained
    # without hard negatives ranked him first.
    result = seed_pipeline.ask("Who is the Russian foreign minister?")
    assert not result.no_answer
    best = result.answers[0]
    assert "Lavrov" in best.text and best.article.text[best.start : best.end] == best.text


def test_unanswerable_question_gets_no_answer(seed_pipeline):
    result = seed_pipeline.ask("Who won the 2022 World Cup?")
    assert result.no_answer and result.answers == []


def test_a_sure_answer_is_read_from_the_first_passages_and_no_answer_from_all(seed_pipeline):
    # The shipped calibration has a stop score for every backend auto may choose.
    assert seed_pipeline.calibration.stop_score is not None
    read_first, read_k = seed_pipeline.settings.read_first, seed_pipeline.settings.read_k
    sure = seed_pipeline.ask("When does New START expire?")
    assert sure.answers[0].text == "2021" and sure.reading["passages"] == read_first
    unanswerable = seed_pipeline.ask("Who won the 2022 World Cup?")
    assert unanswerable.no_answer and unanswerable.reading["passages"] == read_k
    # Tokens are what the reader read: the question and passage of each window and 3 specials.
    assert sure.reading["tokens"] < unanswerable.reading["tokens"]


def test_follow_up_question_uses_the_conversation(seed_pipeline):
    result = seed_pipeline.ask("When does it expire?", history=["What does New START limit?"])
    assert not result.no_answer and result.answers[0].text == "2021"


def test_search_ranks_the_new_start_passage_first(seed_pipeline):
    hits = seed_pipeline.search("When does New START expire?", 5)
    assert "is set to expire in 2021" in hits[0].chunk.text


def test_boilerplate_never_reaches_a_passage(seed_pipeline):
    (article,) = ingest_paths([SEED_FILE]).articles
    gen = seed_pipeline.store.generation()
    with gen.read(None, 0) as (view, _):
        chunks = list(view.passages(view.passage_ids_of(article.id)).values())
    assert chunks
    for chunk in chunks:
        for line in BOILERPLATE:
            assert line not in chunk.text


def test_reader_offsets_map_back_exactly(seed_pipeline):
    reader = seed_pipeline.reader
    passages = [
        "The Eiffel Tower, completed in 1889, is 330 metres tall.",
        "Marie Curie won the Nobel Prize in Physics in 1903 and in Chemistry in 1911.",
    ]
    for spans in reader.read_many(
        ["How tall is the tower?", "When did Curie win the chemistry prize?"], passages, n_best=5
    ):
        assert spans
        for s in spans:
            assert passages[s.passage][s.start : s.end] == s.text


def test_an_answer_split_by_a_window_boundary_is_still_found(seed_pipeline):
    reader = seed_pipeline.reader
    tokenizer = reader.tokenizer
    filler = "The committee met again and discussed the budget at length. "
    target = "The treaty was finally signed in Vienna by both delegations."
    question = "In which city was the treaty signed?"
    # Place "Vienna" right at the end of the first window, so that window cuts the sentence.
    q_tokens = len(tokenizer(question)["input_ids"])
    budget = reader.max_length - q_tokens - 1
    prefix = ""
    while len(tokenizer(prefix + target, add_special_tokens=False)["input_ids"]) < budget + 2:
        prefix += filler
    passage = prefix + target + " " + filler * 6
    windows = tokenizer(
        question,
        passage,
        truncation="only_second",
        max_length=reader.max_length,
        stride=reader.stride,
        return_overflowing_tokens=True,
    )
    assert len(windows["input_ids"]) > 1
    first_window_text = tokenizer.decode(windows["input_ids"][0])
    assert "vienna" not in first_window_text.lower()  # the first window does not hold the answer
    spans = reader.read(question, [passage], n_best=3)
    assert spans[0].text == "Vienna"
    assert passage[spans[0].start : spans[0].end] == "Vienna"


def test_reader_probability_is_low_when_the_passage_lacks_the_answer(seed_pipeline):
    passage = "Apple released Mac OS X Tiger in April 2005. Reviewers praised its Spotlight search."
    good = seed_pipeline.reader.read("When was Tiger released?", [passage], n_best=1)[0]
    bad = seed_pipeline.reader.read("Who won the 2022 World Cup?", [passage], n_best=1)
    assert good.score >= seed_pipeline.threshold
    assert not bad or bad[0].score < seed_pipeline.threshold


def test_news_gold_set_floor(seed_pipeline):
    gold = load_gold(NEWS_GOLD)
    results, summary = evaluate(seed_pipeline, gold, k=10, progress=False)
    assert summary["questions"] >= 40
    # Floors set below what the shipped reader measured (F1 70.2, recall@5 97.2, no-answer
    # recall 5/9 = 55.6 with threshold 0.30; `qa eval seeds/gold/news_gold.jsonl`).
    assert summary["f1"] >= NEWS_F1_FLOOR, summary
    assert summary["recall@5"] >= NEWS_RECALL5_FLOOR, summary
    assert summary["no_answer_recall"] >= NEWS_NO_ANSWER_RECALL_FLOOR, summary


# Measured with the shipped reader: F1 86.7, recall@5 97.2, no-answer recall 8/9 (88.9)
# (`python -m bench.news_gold`, 2026-11-29). The
# floors leave room for bf16-vs-fp32 differences between CPUs, and catch a real regression.
NEWS_F1_FLOOR = 75.0
NEWS_RECALL5_FLOOR = 85.0
NEWS_NO_ANSWER_RECALL_FLOOR = 66.0


def test_lavrov_is_among_the_answers(seed_pipeline):
    """What the reader does get right today: Lavrov is offered, as the second answer."""
    result = seed_pipeline.ask("Who is the Russian foreign minister?")
    assert any("Lavrov" in a.text for a in result.answers)


def test_passages_read_for_one_question_share_one_softmax():
    # Float32: with an int8 reader the scores also depend a little on which windows share a
    # forward pass (one activation scale per batch), which is not what this test is about.
    from qa.reader.extractive import ExtractiveReader
    from qa.reader.loading import load_reader_tokenizer, load_span_model

    reader = ExtractiveReader(load_reader_tokenizer(), load_span_model("torch-fp32"))
    question = "When was Tiger released?"
    passage = "Apple released Mac OS X Tiger in April 2005. Reviewers praised its Spotlight search."
    rival = "Apple released Mac OS X Leopard in October 2007, two years after its predecessor."
    alone = reader.read(question, [passage], n_best=1)[0]
    spans = reader.read(question, [passage, rival], n_best=20)
    together = next(s for s in spans if s.passage == 0 and s.text == alone.text)
    # The rival passage takes some of the probability: the same span now scores less, and no
    # two passages can together claim more than all of it.
    assert together.score < alone.score
    assert sum(s.score for s in spans) <= 1.0
    # Passages of different questions are not normalised together.
    separate = reader.read_many([question, "When was Leopard released?"], [passage, rival], n_best=1)
    assert separate[0][0].score == pytest.approx(alone.score, rel=1e-4)


# ---- issue 18: conversations, dates, doubt ---------------------------------------------------


def test_follow_up_set_retrieval_floor(seed_pipeline):
    """The follow-up set's passages are found with the conversation (`python -m bench.followup`
    measured recall@5 97.1, recall@10 100 with the rule; 68.6 / 85.7 for the question alone)."""
    from qa.eval.followups import load_followups
    from qa.retrieval.followup import retrieval_query

    cases = [c for c in load_followups(ROOT / "seeds" / "gold" / "followups.jsonl") if c.passage]
    k = seed_pipeline.settings.read_k
    with_rule = [c.found_at(seed_pipeline.search(retrieval_query(c.question, c.history), k)) for c in cases]
    alone = [c.found_at(seed_pipeline.search(c.question, k)) for c in cases]
    recall = lambda ranks, at: sum(1 for r in ranks if r and r <= at) / len(ranks)  # noqa: E731
    assert recall(with_rule, k) >= 0.97 and recall(with_rule, 5) >= 0.9, with_rule
    assert recall(with_rule, 5) > recall(alone, 5)


def test_a_pronoun_is_searched_with_the_previous_answer(seed_pipeline):
    from qa.types import Turn

    result = seed_pipeline.ask(
        "When was he born?", history=[Turn("Who is the Russian foreign minister?", "Sergey V. Lavrov")]
    )
    assert "Lavrov" in result.retrieval_query
    assert any("Lavrov" in h.chunk.text for h in result.hits[:3])
    assert result.no_answer  # the articles do not say when he was born


def test_a_new_topic_after_a_conversation_is_searched_as_asked(seed_pipeline):
    result = seed_pipeline.ask(
        "Which treaty limits the number of warheads that each side can deploy?", history=["Who won the 2022 World Cup?"]
    )
    assert result.retrieval_query == result.question
    assert result.answers and result.answers[0].text == "New Start"


def test_present_tense_question_puts_the_newest_article_first(seed_pipeline):
    # A 2015 Wikinews article names John Kerry (the reader's favourite); the 2019 report names
    # Mike Pompeo. The newer answer goes first, flagged; the reader is unsure of its span, so
    # both come back as candidates with their dates. Read in float32: in int8 the 2019 answer's
    # score, discounted by its passage's rank, falls under int8's no-answer threshold, so only
    # Kerry is offered (recency weighs the answers that clear the threshold; a looser rule cost
    # 1.7 F1 on the news benchmark's dev split).
    from qa.pipeline import QAPipeline

    float_reader = QAPipeline(seed_pipeline.settings.model_copy(update={"reader_backend": "onnx-fp32"}))
    result = float_reader.ask("Who is the US secretary of state?")
    best = result.answers[0]
    assert "Pompeo" in best.text and best.article.date == "2019-05-14"
    assert result.newest_first
    assert any(a.text == "John Kerry" and a.article.date == "2015-05-18" for a in result.answers[1:])
    # Asked about 2015, the 2015 article answers.
    then = float_reader.ask("Who was the US secretary of state in 2015?")
    assert then.answers and then.answers[0].text == "John Kerry" and then.period is not None
    assert (then.period.date_from, then.period.date_to) == ("2015-01-01", "2015-12-31")


DATED_CEOS = [
    (
        "2012-02-01",
        "Priya Desai",
        "Northwind Rail named Priya Desai as its chief executive on Tuesday. Desai, who ran the "
        "company's freight arm, takes over a railway that carried 40 million passengers last year.",
    ),
    (
        "2017-06-12",
        "Tomas Berg",
        "Tomas Berg, the chief executive of Northwind Rail, said on Monday that the company would "
        "order 60 new trains. Berg took over from Priya Desai last year.",
    ),
    (
        "2022-09-30",
        "Lena Okafor",
        "Northwind Rail's chief executive, Lena Okafor, announced record profits on Friday. Okafor, "
        "who succeeded Tomas Berg in 2020, said fares would be frozen.",
    ),
]


def test_articles_that_disagree_across_dates(seed_pipeline, tmp_path):
    from qa.config import Settings
    from qa.pipeline import QAPipeline
    from qa.types import Article

    pipeline = QAPipeline(Settings(index_dir=tmp_path / "idx"), seed_pipeline.embedder, seed_pipeline.reader)
    pipeline.build_from_articles(
        [Article(f"ceo-{date[:4]}", f"Northwind Rail {date[:4]}", text, date=date) for date, _, text in DATED_CEOS]
    )
    now = pipeline.ask("Who is the chief executive of Northwind Rail?")
    assert now.answers[0].text == "Lena Okafor" and now.answers[0].article.date == "2022-09-30"
    assert pipeline.ask("Who was the chief executive of Northwind Rail in 2017?").answers[0].text == "Tomas Berg"
    as_of = pipeline.ask("Who is the chief executive of Northwind Rail as of 2015?")
    assert as_of.answers[0].text == "Priya Desai"


def test_an_unsure_answer_is_shown_as_candidates(seed_pipeline):
    sure = seed_pipeline.ask("When does New START expire?", top_k=1)
    assert not sure.unsure and len(sure.answers) == 1
    # The reader finds what Pompeo said but is unsure of its span (confidence 27-31% on every backend;
    # "What did Lavrov deny?" is at 48-52% since the calibration of the reading cascade).
    doubtful = seed_pipeline.ask("What did Pompeo say?", top_k=1)
    assert doubtful.unsure and doubtful.answers
    assert all(a.confidence < seed_pipeline.calibration.unsure_below for a in doubtful.answers[:1])
