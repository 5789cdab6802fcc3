"""The reader's backends on the shipped weights: ONNX and CTranslate2 copies exported from them
read the answers float32 PyTorch reads; "auto" chooses among the accurate backends present; a
missing, stale or unknown backend is a clear error."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from qa.config import Settings
from qa.loading import ModelNotFoundError, onnx_source_digest, weights_digest
from qa.pipeline import QAPipeline
from qa.reader.backends import CT2_DIR, ct2_source_digest
from qa.reader.extractive import ExtractiveReader, encode_windows
from qa.reader.loading import (
    BUNDLED_READER_DIR,
    ReaderBackendError,
    available_backends,
    choose_span_model,
    fast_bf16_available,
    load_reader_tokenizer,
    load_span_model,
)
from qa.training.reader_export import CT2_RECIPE, RECIPES
from tests.fakes import FakeEmbedder

pytestmark = pytest.mark.real_models

PASSAGES = [
    "The New START treaty limits deployed strategic warheads to 1,550 and is set to expire in 2021 "
    "unless both sides agree to extend it for five more years.",
    "Sergey V. Lavrov, the Russian foreign minister, met Mike Pompeo in Sochi on Tuesday.",
    "The weather in Sochi was warm for May, and the talks ran late into the evening.",
]
QUESTIONS = {
    "When does New START expire?": "2021",
    "Who is the Russian foreign minister?": "Sergey V. Lavrov",
    "How many warheads does the treaty allow?": "1,550",
    "Where did Lavrov meet Pompeo?": "Sochi",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped reader folder with every recipe exported by `qa export-reader`."""
    from qa.cli import main

    folder = tmp_path_factory.mktemp("exported") / "reader"
    shutil.copytree(BUNDLED_READER_DIR, folder, ignore=shutil.ignore_patterns("*.onnx", CT2_DIR))
    for recipe in [*RECIPES, CT2_RECIPE]:
        assert main(["export-reader", "--reader", str(folder), "--recipe", recipe]) == 0
    return folder


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A copy of the shipped reader folder without any ONNX file."""
    folder = tmp_path / "reader"
    shutil.copytree(BUNDLED_READER_DIR, folder, ignore=shutil.ignore_patterns("*.onnx", CT2_DIR))
    return folder


def reader(backend: str, path: Path) -> ExtractiveReader:
    return ExtractiveReader(load_reader_tokenizer(str(path)), load_span_model(backend, str(path)))


def test_export_writes_each_recipe_from_the_weights_beside_it(exported):
    for recipe in RECIPES.values():
        assert onnx_source_digest(exported / recipe.file) == weights_digest(exported)
    # int8 weights: a quarter of float32's bytes (the file must stay small enough to ship).
    assert (exported / RECIPES["int8"].file).stat().st_size < 0.3 * (exported / RECIPES["fp32"].file).stat().st_size
    assert ct2_source_digest(exported / CT2_DIR) == weights_digest(exported)
    assert (exported / CT2_DIR / "model.bin").stat().st_size < 0.3 * (exported / RECIPES["fp32"].file).stat().st_size


@pytest.mark.parametrize(
    ("backend", "score_tolerance"),
    [
        ("onnx-fp32", 1e-3),  # the same arithmetic, other kernels
        ("torch-bf16", 0.05),  # 8 bits of mantissa
        ("onnx-int8", 0.1),  # int8 rounding moves scores a little
        ("ctranslate2-int8", 0.1),  # its own int8 kernels
    ],
)
def test_backends_read_what_float32_pytorch_reads(exported, backend, score_tolerance):
    fp32, other = reader("torch-fp32", exported), reader(backend, exported)
    for question, answer in QUESTIONS.items():
        a, b = fp32.read(question, PASSAGES, n_best=3), other.read(question, PASSAGES, n_best=3)
        assert a[0].text == b[0].text == answer
        assert (a[0].passage, a[0].start, a[0].end) == (b[0].passage, b[0].start, b[0].end)
        assert b[0].score == pytest.approx(a[0].score, abs=score_tolerance)
        if backend == "onnx-fp32":
            assert [(s.passage, s.start, s.end) for s in a] == [(s.passage, s.start, s.end) for s in b]


def test_auto_chooses_among_the_accurate_backends_present_and_logs_it(exported, bare, caplog):
    plain = "torch-bf16" if fast_bf16_available() else "torch-fp32"
    assert available_backends(str(bare)) == (["torch-fp32", "torch-bf16"] if fast_bf16_available() else ["torch-fp32"])
    # CTranslate2's int8 loses more F1 than auto allows: there by name only.
    assert available_backends(str(exported)) == [*available_backends(str(bare)), "onnx-fp32", "onnx-int8"]
    with caplog.at_level(logging.INFO, logger="qa"):
        chosen = choose_span_model("auto", str(exported))
    # Timed here, so any may win.
    assert chosen.name in {"torch-fp32", plain, "onnx-fp32", "onnx-int8"}
    assert f"reader backend: {chosen.name} (auto, of {', '.join(available_backends(str(exported)))})" in caplog.text
    assert "reader backends timed: torch-fp32" in caplog.text
    with caplog.at_level(logging.INFO, logger="qa"):
        assert choose_span_model("auto", str(bare)).name in {"torch-fp32", plain}
    # Without an ONNX copy (a wheel install, say) the log says how to make the fast one.
    assert f"runs on PyTorch: `qa export-reader --recipe int8 --reader {bare}` makes the int8 one" in caplog.text


def test_the_pipeline_reads_with_the_backend_set(exported, tmp_path):
    settings = Settings(index_dir=tmp_path / "index", reader_path=exported, reader_backend="onnx-int8")
    pipeline = QAPipeline(settings, embedder=FakeEmbedder())
    assert isinstance(pipeline.reader, ExtractiveReader) and pipeline.reader.model.name == "onnx-int8"
    assert pipeline.reader.read("When does New START expire?", PASSAGES)[0].text == "2021"


def test_without_its_onnx_file_a_backend_says_how_to_make_it(bare):
    with pytest.raises(ModelNotFoundError, match=f"qa export-reader --recipe int8 --reader {bare}"):
        load_span_model("onnx-int8", str(bare))


def test_an_onnx_file_from_other_weights_is_refused(exported, bare):
    from safetensors.torch import load_file, save_file

    shutil.copy(exported / RECIPES["fp32"].file, bare / RECIPES["fp32"].file)
    assert available_backends(str(bare))[-1] == "onnx-fp32"
    weights = load_file(str(bare / "model.safetensors"))
    name = next(k for k in weights if k.endswith("qa_outputs.bias"))
    weights[name] = weights[name] + 1  # as if retrained
    save_file(weights, str(bare / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelNotFoundError, match="exported from other weights"):
        load_span_model("onnx-fp32", str(bare))
    assert "onnx-fp32" not in available_backends(str(bare))  # auto falls back to PyTorch


def test_a_ctranslate2_copy_missing_or_from_other_weights_is_refused_with_how_to_make_it(exported, bare):
    with pytest.raises(ModelNotFoundError, match=f"qa export-reader --recipe ct2-int8 --reader {bare}"):
        load_span_model("ctranslate2-int8", str(bare))
    shutil.copytree(exported / CT2_DIR, bare / CT2_DIR)
    assert load_span_model("ctranslate2-int8", str(bare)).name == "ctranslate2-int8"
    (bare / CT2_DIR / "source.json").write_text('{"source_weights_sha256": "0000"}')
    with pytest.raises(ModelNotFoundError, match="made from other weights"):
        load_span_model("ctranslate2-int8", str(bare))


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(ReaderBackendError, match="unknown reader backend 'tpu'; choose one of auto, torch-fp32"):
        load_span_model("tpu")


class CountingModel:
    """The real span model, counting the windows and forward passes it is given."""

    def __init__(self, model) -> None:
        self.model, self.name = model, model.name
        self.windows: list[int] = []
        self.lengths: list[list[int]] = []  # the real tokens of each window, by forward pass

    def __call__(self, input_ids, attention_mask, token_type_ids):
        self.windows.append(input_ids.shape[0])
        self.lengths.append(attention_mask.sum(axis=1).tolist())
        return self.model(input_ids, attention_mask, token_type_ids)


def test_windows_are_batched_by_length_and_read_as_one_padded_batch_would(bare):
    model = CountingModel(load_span_model("torch-fp32", str(bare)))
    tokenizer = load_reader_tokenizer(str(bare))
    passages = [*PASSAGES, " ".join(PASSAGES * 4)]  # short passages and several full windows
    question = "When does New START expire?"
    by_length = ExtractiveReader(tokenizer, model).read(question, passages)
    lengths = [len(ids) for ids in encode_windows(tokenizer, [question] * 4, passages, 256, 96).input_ids]
    assert sum(model.windows) == len(lengths) and len(model.windows) > 1
    # No window is padded by more than 10% of its length.
    assert all(max(batch) <= 1.1 * min(batch) for batch in model.lengths)
    model.windows.clear()
    one_batch = ExtractiveReader(tokenizer, model, length_slack=float("inf")).read(question, passages)
    assert model.windows == [len(lengths)]
    assert [(s.passage, s.start, s.end) for s in one_batch] == [(s.passage, s.start, s.end) for s in by_length]
    assert [s.score for s in one_batch] == pytest.approx([s.score for s in by_length], abs=1e-5)


def test_a_question_reads_each_passage_once_however_often_its_answers_reread_them(bare):
    model = CountingModel(load_span_model("torch-fp32", str(bare)))
    reader = ExtractiveReader(load_reader_tokenizer(str(bare)), model)
    question = "Who is the Russian foreign minister?"
    one = reader.for_question()
    first = one.read(question, PASSAGES)
    read_once = sum(model.windows)
    # Each passage alone, as qa/answer/recency.py re-reads articles: no forward pass, and the
    # spans a fresh reader finds.
    alone = one.read_many([question] * 3, PASSAGES, n_best=1)
    assert sum(model.windows) == read_once
    fresh = reader.read_many([question] * 3, PASSAGES, n_best=1)
    assert [[(s.start, s.end, round(s.score, 5)) for s in g] for g in alone] == [
        [(s.start, s.end, round(s.score, 5)) for s in g] for g in fresh
    ]
    assert first[0].text == "Sergey V. Lavrov"
    # The reader itself keeps nothing: the same question asked again is read again.
    model.windows.clear()
    reader.for_question().read(question, PASSAGES)
    assert sum(model.windows) == read_once
