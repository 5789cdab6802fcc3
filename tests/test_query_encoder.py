"""The ONNX query encoder (`qa export-embedder`, QA_QUERY_ENCODER): the vectors it gives
questions are the embedder's own (float32) or close to them (int8), retrieval finds the same
passages with it, auto takes it only when it was exported from the weights in use, and a
missing or stale file is a clear error when asked for by name."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from qa.config import Settings
from qa.index.embedding import SentenceTransformerEmbedder
from qa.index.loading import QueryEncoderError, UnsupportedEmbedderError, choose_query_encoder, embedder_dir
from qa.loading import ModelNotFoundError, onnx_source_digest, weights_digest
from qa.pipeline import QAPipeline
from qa.training.embedder_export import RECIPES, export_query_encoder
from qa.types import Article
from tests.fakes import FakeReader

pytestmark = pytest.mark.real_models

QUESTIONS = [
    "When does New START expire?",
    "Who is the Russian foreign minister?",
    "Where did Pompeo and Lavrov hold their talks?",
    "what happened in sochi",
    # Longer than the embedder's 256 tokens: both paths must cut it at the same place.
    "Which treaty " + "about nuclear arms control between the two countries " * 40 + "expires?",
]


def linked_copy(dst: Path) -> Path:
    """The packaged embedder's folder as links, so that exports can be written beside it."""
    dst.mkdir(parents=True)
    for item in embedder_dir().iterdir():
        (dst / item.name).symlink_to(item, target_is_directory=item.is_dir())
    return dst


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linked copy of the packaged embedder with both recipes exported by `qa export-embedder`."""
    from qa.cli import main

    folder = linked_copy(tmp_path_factory.mktemp("embedder") / "minilm")
    for recipe in RECIPES:
        assert main(["export-embedder", "--embedder", str(folder), "--recipe", recipe]) == 0
    return folder


def test_export_writes_each_recipe_beside_the_weights_it_came_from(exported):
    for file in RECIPES.values():
        assert onnx_source_digest(exported / file) == weights_digest(exported)
    assert (exported / RECIPES["int8"]).stat().st_size < 0.35 * (exported / RECIPES["fp32"]).stat().st_size


def test_float32_gives_the_embedders_own_vectors_and_int8_nearly(exported):
    reference = SentenceTransformerEmbedder(str(exported), query_encoder="torch")
    expected = reference.encode(QUESTIONS)
    for name, least_cosine in (("onnx-fp32", 0.99999), ("onnx-int8", 0.97)):
        embedder = SentenceTransformerEmbedder(str(exported), query_encoder=name)
        assert embedder.query_encoder == name
        vectors = np.stack([embedder.encode_query(q) for q in QUESTIONS])
        assert vectors.dtype == np.float32 and vectors.shape == expected.shape
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert (vectors * expected).sum(axis=1).min() > least_cosine


def test_retrieval_finds_the_same_passages_with_the_onnx_encoder(exported, tmp_path):
    articles = [
        Article("treaty", "New START", "The New START treaty expires in 2021 unless it is extended."),
        Article("talks", "Sochi talks", "Lavrov and Pompeo held talks in Sochi, a resort on the Black Sea."),
        Article("rain", "Weather", "Heavy rain flooded streets in Lagos on Monday, officials said."),
    ]
    hits = {}
    for name in ("torch", "onnx-fp32"):
        settings = Settings(index_dir=tmp_path / name, embedder_path=exported, query_encoder=name)
        pipeline = QAPipeline(settings, reader=FakeReader())
        pipeline.build_from_articles(articles)
        assert pipeline.query_encoder == name
        hits[name] = [[h.chunk.article_id for h in pipeline.search(q, k=3, mode="dense")] for q in QUESTIONS[:4]]
    assert hits["onnx-fp32"] == hits["torch"]
    assert hits["torch"][0][0] == "treaty" and hits["torch"][2][0] == "talks"


def test_auto_prefers_float32_then_int8_made_from_the_weights_in_use(exported, tmp_path, caplog):
    def auto(folder: Path) -> str:
        chosen = choose_query_encoder("auto", str(folder))
        return chosen.name if chosen else "torch"

    assert auto(exported) == "onnx-fp32"
    only_int8 = linked_copy(tmp_path / "only-int8")
    (only_int8 / RECIPES["int8"]).symlink_to(exported / RECIPES["int8"])
    assert auto(only_int8) == "onnx-int8"
    bare = linked_copy(tmp_path / "bare")
    with caplog.at_level(logging.INFO, logger="qa"):
        assert auto(bare) == "torch"  # the embedder's own PyTorch path
    assert (
        f"no ONNX copy of the embedder, so questions are embedded on PyTorch: `qa export-embedder --embedder {bare}`"
        in caplog.text
    )
    # A float32 export from other weights (here: the same file stamped with another digest) is
    # stale: auto passes it over for the int8 one that is current.
    import onnx

    stale = linked_copy(tmp_path / "stale-fp32")  # a new folder: choices are cached per folder
    (stale / RECIPES["int8"]).symlink_to(exported / RECIPES["int8"])
    model = onnx.load(str(exported / RECIPES["fp32"]))
    onnx.helper.set_model_props(model, {"source_weights_sha256": "0" * 64})
    onnx.save(model, str(stale / RECIPES["fp32"]))
    assert auto(stale) == "onnx-int8"
    with pytest.raises(ModelNotFoundError, match="export it again with `qa export-embedder --recipe fp32 --embedder"):
        choose_query_encoder("onnx-fp32", str(stale))
    with pytest.raises(ModelNotFoundError, match="make it with `qa export-embedder --recipe int8 --embedder"):
        choose_query_encoder("onnx-int8", str(bare))


def test_an_unknown_query_encoder_is_refused_with_the_choices():
    with pytest.raises(QueryEncoderError, match="choose one of auto, torch, onnx-fp32, onnx-int8"):
        choose_query_encoder("onnx-int4")
    with pytest.raises(ValidationError, match="query_encoder"):
        Settings(query_encoder="onnx-int4")


def test_an_embedder_that_does_not_mean_pool_is_not_exported(tmp_path):
    folder = tmp_path / "cls-pooled"
    folder.mkdir()
    for item in embedder_dir().iterdir():
        if item.name != "1_Pooling":
            (folder / item.name).symlink_to(item, target_is_directory=item.is_dir())
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    with pytest.raises(UnsupportedEmbedderError, match="does not mean-pool"):
        export_query_encoder(folder, tmp_path / "out.onnx", "fp32")
    assert not (tmp_path / "out.onnx").exists()
