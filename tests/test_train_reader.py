"""The training recipe on a tiny SQuAD file: labels, export, checkpoint/resume, reproducibility."""

import json

import pytest
import torch
from safetensors import safe_open

from qa.eval.squad import SquadQuestion, load_squad
from qa.ingest.chunking import Chunker
from qa.training.reader_training import (
    STATE_FILE,
    TrainConfig,
    _negatives_for,
    batch_order,
    build_features,
    hard_negatives,
    shared_norm_loss,
    shared_norm_pairs,
    train,
)

pytestmark = pytest.mark.real_models

CONTEXT = "New Start is set to expire in 2021. " + "The talks in Sochi were frank. " * 40 + "Lavrov spoke last."
SQUAD = {
    "data": [
        {
            "title": "t",
            "paragraphs": [
                {
                    "context": CONTEXT,
                    "qas": [
                        {
                            "id": "a",
                            "question": "When does New Start expire?",
                            "answers": [{"text": "2021", "answer_start": 30}],
                        },
                        {
                            "id": "b",
                            "question": "Who spoke last?",
                            "answers": [{"text": "Lavrov", "answer_start": CONTEXT.index("Lavrov")}],
                        },
                        {
                            "id": "c",
                            "question": "Where were the talks?",
                            "answers": [{"text": "Sochi", "answer_start": CONTEXT.index("Sochi")}],
                        },
                    ],
                }
            ],
        }
    ]
}


@pytest.fixture
def squad_file(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps(SQUAD))
    return path


def test_window_labels_point_at_the_answer_or_cls(squad_file):
    from transformers import AutoTokenizer

    from qa.index.loading import embedder_dir

    tokenizer = AutoTokenizer.from_pretrained(str(embedder_dir()))
    questions = load_squad(squad_file)
    features = build_features(tokenizer, questions, max_length=64, stride=16)
    assert len(features.start) > len(questions)  # long context -> several windows each
    labelled = 0
    for ids, s, e in zip(features.input_ids, features.start, features.end, strict=True):
        if s == 0:
            assert e == 0  # a window without the answer points at [CLS]
            continue
        labelled += 1
        span = tokenizer.decode(ids[s : e + 1])
        assert span in {"2021", "lavrov", "sochi"}
    assert labelled >= len(questions)


def test_batches_cover_every_window_once_and_are_length_sorted_within():
    lengths = [5, 50, 7, 48, 6, 49, 8, 47] * 10
    batches = batch_order(lengths, batch_size=4, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batch_order(lengths, 4, 1, 0) == batches and batch_order(lengths, 4, 1, 1) != batches


def test_export_resume_and_reproducibility(squad_file, tmp_path):
    def cfg(out, **overrides):
        settings = dict(
            squad=str(squad_file),
            out=str(out),
            max_length=64,
            stride=16,
            batch_size=2,
            max_features=4,
            checkpoint_minutes=0,
            threads=1,
            bf16=False,  # float32, as before TrainConfig took the CLI's default (bf16)
        )
        return TrainConfig(**{**settings, **overrides})

    def weights(folder):
        with safe_open(folder / "model.safetensors", "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}

    state = train(cfg(tmp_path / "r1"), progress=False)
    assert (state.step, state.features_seen) == (2, 4)
    first = weights(tmp_path / "r1")
    assert all(t.dtype == torch.float16 for t in first.values())
    assert json.loads((tmp_path / "r1" / STATE_FILE).read_text())["features_seen"] == 4

    # Same seed, same data: the same weights.
    train(cfg(tmp_path / "r2"), progress=False)
    second = weights(tmp_path / "r2")
    assert all(torch.equal(first[k], second[k]) for k in first)

    # Resume from the checkpoint with a longer plan: it continues where it stopped.
    resumed = train(cfg(tmp_path / "r1", max_features=6, resume=True), progress=False)
    assert (resumed.step, resumed.features_seen) == (3, 6)
    assert any(not torch.equal(first[k], t) for k, t in weights(tmp_path / "r1").items())

    # A fresh machine continues from exported weights: the windows already seen are counted.
    continued = train(
        cfg(tmp_path / "r3", init=str(tmp_path / "r1"), max_features=2, negatives=1.0, shared_norm=1.0), progress=False
    )
    assert continued.prior_features == 6 and continued.features_seen == 2
    assert continued.negatives_seen > 0  # hard negatives rode along with the SQuAD windows
    assert json.loads((tmp_path / "r3" / STATE_FILE).read_text())["prior_features"] == 6


def _q(qid: str, question: str, answer: str, title: str, paragraph: int, context: str) -> SquadQuestion:
    article_index = ord(title) - ord("A")  # one entry of the file per title here
    return SquadQuestion(qid, question, context, title, article_index, paragraph, (answer,), (context.index(answer),))


def test_hard_negative_is_the_closest_passage_of_the_same_article_without_the_answer():
    gold = "The treaty was signed in Prague by the two presidents in April."
    near = "The treaty talks in Prague dragged on; the presidents met twice before the signing."
    far = "Fishing quotas in the Baltic were cut again this year. " * 3
    other = "The treaty was signed in Prague, said a paper from another article entirely."
    questions = [
        _q("1", "Where was the treaty signed by the presidents?", "Prague", "A", 0, gold),
        _q("2", "What was cut?", "Fishing quotas", "A", 2, far),
        _q("3", "Who wrote?", "a paper", "B", 0, other),
    ]
    # Article A = its three paragraphs; the near paragraph shares the question's words but not
    # its answer... except that it does hold "Prague", so the only valid negative is `far`.
    questions.insert(1, _q("4", "How often did the presidents meet?", "twice", "A", 1, near))
    negatives = hard_negatives(questions, chunker=Chunker(size=100, overlap=0))
    assert negatives[0] is not None and "Prague" not in negatives[0] and "Fishing" in negatives[0]
    assert negatives[1] is not None and "twice" not in negatives[1] and "signed" in negatives[1]  # BM25's pick
    assert negatives[3] is None  # article B has no other passage
    assert all(n is None or "another article" not in n for n in negatives[:3])


def test_negatives_share_is_seeded_and_once_per_question():
    sample = [0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    windows = {q: ([q], [0]) for q in range(9)}
    picked = _negatives_for(list(range(10)), sample, windows, 0.5, seed=1, step=3)
    assert picked == _negatives_for(list(range(10)), sample, windows, 0.5, seed=1, step=3)
    assert 0 < len(picked) < 9 and len(set(picked)) == len(picked)
    assert len(_negatives_for(list(range(10)), sample, windows, 1.0, seed=1, step=3)) == 9
    assert _negatives_for(list(range(10)), sample, windows, 0.0, seed=1, step=3) == []


def test_shared_norm_pairs_a_question_s_answer_window_with_its_negative():
    # Rows 0-3 are the batch's windows (questions 7, 7, 8, 9; row 0 lacks the answer: start 0);
    # negatives follow for questions 7, 9 and 8, in that order.
    pairs = shared_norm_pairs([7, 7, 8, 9], [0, 12, 5, 0], [7, 9, 8])
    assert pairs == [(1, 4), (2, 6)]  # question 9's only window lacks its answer: no pair


def test_shared_norm_loss_is_one_softmax_over_both_windows():
    start = torch.tensor([[0.0, 3.0, 1.0, 9.0], [2.0, 1.0, 0.0, 0.0]])
    end = torch.tensor([[0.0, 1.0, 4.0, 9.0], [0.0, 0.0, 2.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, False]])  # last token is padding
    loss = shared_norm_loss(start, end, mask, [1, 0], [2, 0], [(0, 1)])
    joint_start = torch.tensor([0.0, 3.0, 1.0, 2.0, 1.0, 0.0])
    joint_end = torch.tensor([0.0, 1.0, 4.0, 0.0, 0.0, 2.0])
    expected = (torch.logsumexp(joint_start, 0) - 3.0 + torch.logsumexp(joint_end, 0) - 4.0) / 2
    assert torch.isclose(loss, expected)
    # A negative window that scores a span above the gold one costs more.
    start[1, 1] = 6.0
    assert shared_norm_loss(start, end, mask, [1, 0], [2, 0], [(0, 1)]) > loss
