"""What embeds passages (QA_PASSAGE_EMBEDDER): the index records it (int8 under its own name),
an index opened under another is refused with the way out, the ONNX copies give the model's own
vectors (float32) or close ones (int8) on real news text, and an int8 index answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from qa.config import Settings
from qa.index import db
from qa.index.embedding import SentenceTransformerEmbedder
from qa.index.loading import (
    EMBEDDER_NAME,
    PassageEmbedderError,
    choose_passage_encoder,
    embedder_dir,
    passage_embedder_name,
)
from qa.index.store import IndexMismatchError
from qa.ingest.chunking import Chunker
from qa.ingest.files import ingest_paths
from qa.loading import ModelNotFoundError
from qa.pipeline import QAPipeline
from qa.types import Article
from tests.fakes import FakeEmbedder, FakeReader

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds" / "articles"
ARTICLES = [
    Article("treaty", "New START", "The New START treaty expires in 2021 unless it is extended."),
    Article("talks", "Sochi talks", "Lavrov and Pompeo held talks in Sochi, a resort on the Black Sea."),
]
INT8_NAME = f"{EMBEDDER_NAME}+onnx-int8"


def test_settings_and_the_embedder_refuse_unknown_passage_embedders():
    assert Settings().passage_embedder == "torch"
    assert Settings(passage_embedder="onnx-int8").passage_embedder == "onnx-int8"
    with pytest.raises(ValidationError, match="passage_embedder"):
        Settings(passage_embedder="onnx-int4")
    with pytest.raises(PassageEmbedderError, match="choose one of torch, onnx-fp32, onnx-int8"):
        SentenceTransformerEmbedder(passage_embedder="int8")


def test_int8_passages_have_their_own_name_and_float32_keeps_the_models():
    # torch and onnx-fp32 give the same vectors: indexes built before the setting open under both.
    assert SentenceTransformerEmbedder().name == EMBEDDER_NAME
    assert SentenceTransformerEmbedder(passage_embedder="onnx-fp32").name == EMBEDDER_NAME
    assert SentenceTransformerEmbedder(passage_embedder="onnx-int8").name == INT8_NAME
    assert passage_embedder_name("/models/mine", "onnx-int8") == "/models/mine+onnx-int8"


def _recorded(index_dir: Path) -> str:
    """The embedder name the index's current generation records."""
    generation = index_dir / (index_dir / "CURRENT").read_text().strip()
    return db.read_spec(db.connect(generation / "store.sqlite"))[1].embedder


def _fake_named(name: str) -> FakeEmbedder:
    fake = FakeEmbedder()
    fake.name, fake.dim = name, SentenceTransformerEmbedder.PACKAGED_DIM
    return fake


@pytest.mark.parametrize(
    ("built", "opened", "way_out"),
    [(INT8_NAME, "torch", "QA_PASSAGE_EMBEDDER=onnx-int8"), (EMBEDDER_NAME, "onnx-int8", "QA_PASSAGE_EMBEDDER=torch")],
)
def test_an_index_opened_under_another_passage_embedder_is_refused_with_the_way_out(tmp_path, built, opened, way_out):
    settings = Settings(index_dir=tmp_path / "index", passage_embedder=opened)
    QAPipeline(settings, _fake_named(built), FakeReader()).build_from_articles(ARTICLES)
    assert _recorded(tmp_path / "index") == built
    with pytest.raises(IndexMismatchError) as refused:
        QAPipeline(settings, reader=FakeReader()).load()  # the real embedder's name, under `opened`
    message = str(refused.value)
    assert f"embedder: index has {built!r}" in message
    assert way_out in message and "qa index --rebuild" in message


def test_the_same_name_opens_without_loading_a_model(tmp_path):
    settings = Settings(index_dir=tmp_path / "index", passage_embedder="onnx-int8")
    QAPipeline(settings, _fake_named(INT8_NAME), FakeReader()).build_from_articles(ARTICLES)
    QAPipeline(settings, reader=FakeReader()).load()


def test_a_missing_int8_file_says_the_command_that_makes_it(tmp_path):
    folder = tmp_path / "minilm"  # the packaged embedder's files, without ONNX copies beside them
    folder.mkdir()
    for item in embedder_dir().iterdir():
        (folder / item.name).symlink_to(item, target_is_directory=item.is_dir())
    with pytest.raises(ModelNotFoundError, match=f"qa export-embedder --recipe int8 --embedder {folder}"):
        choose_passage_encoder("onnx-int8", str(folder))


def _seed_passages() -> list[str]:
    articles = ingest_paths([SEEDS]).articles
    chunker = Chunker(Settings().chunk_size, Settings().chunk_overlap)
    return [c.text for a in articles[:40] for c in chunker.chunk(a)]


@pytest.mark.real_models
def test_onnx_passage_vectors_are_the_models_in_float32_and_close_in_int8():
    """On real news passages (the bundled articles), embedded in batches as at ingest."""
    texts = _seed_passages()
    assert len(texts) > 100
    expected = SentenceTransformerEmbedder().encode(texts)
    for name, least, least_mean in (("onnx-fp32", 0.99999, 0.999999), ("onnx-int8", 0.97, 0.985)):
        vectors = SentenceTransformerEmbedder(passage_embedder=name).encode(texts)
        assert vectors.dtype == np.float32 and vectors.shape == expected.shape
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        cosine = (vectors * expected).sum(axis=1)
        assert cosine.min() > least and cosine.mean() > least_mean, (name, cosine.min(), cosine.mean())


@pytest.mark.real_models
def test_an_int8_index_answers_over_the_bundled_articles(tmp_path):
    settings = Settings(index_dir=tmp_path / "index", passage_embedder="onnx-int8")
    pipeline = QAPipeline(settings)
    pipeline.build([SEEDS])
    assert _recorded(tmp_path / "index") == INT8_NAME
    assert pipeline.passage_embedder == "onnx-int8"  # what /healthz reports
    hits = pipeline.search("When does New START expire?", 5)
    assert "is set to expire in 2021" in hits[0].chunk.text
    result = pipeline.ask("When does New START expire?")
    assert not result.no_answer and result.answers[0].text == "2021"
    assert result.answers[0].article.title.startswith("U.S.-Russia Talks Expose Deep Fissures")
