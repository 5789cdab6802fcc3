import json

import numpy as np
import pytest

from qa.config import Settings
from qa.index.store import IndexConflictError, IndexCorruptError, IndexMismatchError, IndexNotFoundError, IndexStore
from qa.pipeline import ArticleNotFoundError, QAPipeline
from qa.types import Article

from tests.fakes import FakeEmbedder, FakeReader

ARTICLES = [
    Article("a1", "Treaty", "New Start is set to expire in 2021. It limits missiles.", "2019-05-14", "Times"),
    Article("a2", "Planes", "The A380 first flew in 2005. Airbus built it in Toulouse.", "2005-04-27", "Wikinews"),
    Article("a3", "Apple", "Apple released Tiger in 2005. Steve Jobs presented it.", "2005-05-07", "Wikinews"),
]


def make_pipeline(tmp_path, embedder=None, **overrides):
    settings = Settings(index_dir=tmp_path / "index", chunk_size=200, chunk_overlap=50, no_answer_threshold=0.5, **overrides)
    return QAPipeline(settings, embedder=embedder or FakeEmbedder(), reader=FakeReader())


def test_save_and_load_round_trip(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES)
    q = make_pipeline(tmp_path)
    q.load()
    assert q.state.data.articles == p.state.data.articles
    assert q.state.data.chunks == p.state.data.chunks
    np.testing.assert_array_equal(q.state.data.vectors, p.state.data.vectors)
    manifest = json.loads((tmp_path / "index" / (tmp_path / "index" / "CURRENT").read_text().strip() / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["counts"] == {"articles": 3, "chunks": len(p.state.data.chunks)}
    assert manifest["spec"] == {"embedder": "fake-embedder", "dim": 64, "chunk_size": 200, "chunk_overlap": 50}


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(IndexNotFoundError, match="qa index"):
        make_pipeline(tmp_path).load()


def test_other_settings_or_embedder_are_refused_with_the_difference(tmp_path):
    make_pipeline(tmp_path).build_from_articles(ARTICLES)
    with pytest.raises(IndexMismatchError, match="chunk_size: index has 200, settings ask 300"):
        QAPipeline(Settings(index_dir=tmp_path / "index", chunk_size=300, chunk_overlap=50), FakeEmbedder(), FakeReader()).load()
    other = FakeEmbedder()
    other.name = "other-embedder"
    with pytest.raises(IndexMismatchError, match="embedder"):
        make_pipeline(tmp_path, embedder=other).load()


@pytest.mark.parametrize("victim", ["dense.faiss", "chunks.jsonl", "articles.jsonl"])
def test_truncated_or_altered_files_are_detected(tmp_path, victim):
    make_pipeline(tmp_path).build_from_articles(ARTICLES)
    store = IndexStore(tmp_path / "index")
    path = store._current_dir() / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match="qa index --rebuild"):
        make_pipeline(tmp_path).load()


def test_a_crash_mid_write_leaves_the_previous_version_loadable(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES[:2])
    root = tmp_path / "index"
    # What a crash before the commit point leaves: a half-written temp version.
    (root / ".tmp-v000002-999").mkdir()
    (root / ".tmp-v000002-999" / "dense.faiss").write_bytes(b"partial")
    q = make_pipeline(tmp_path)
    q.load()
    assert set(q.state.data.articles) == {"a1", "a2"}
    q.add_articles([ARTICLES[2]])  # the next write cleans the leftovers up
    assert not list(root.glob(".tmp-*"))
    assert sorted(x.name for x in root.iterdir()) == ["CURRENT", "LOCK", "v000001", "v000002"]  # previous kept
    q.delete_article("a3")
    assert sorted(x.name for x in root.iterdir()) == ["CURRENT", "LOCK", "v000002", "v000003"]


def test_a_second_process_writing_the_same_index_is_not_silently_overwritten(tmp_path):
    server = make_pipeline(tmp_path)
    server.build_from_articles(ARTICLES[:2])
    cli = make_pipeline(tmp_path)  # e.g. `qa ingest` while `qa serve` runs
    cli.load()
    cli.add_articles([ARTICLES[2]])
    with pytest.raises(IndexConflictError, match="another process"):
        server.delete_article("a1")
    reloaded = make_pipeline(tmp_path)
    reloaded.load()
    assert set(reloaded.state.data.articles) == {"a1", "a2", "a3"}


def test_add_and_delete_embed_only_the_new_article(tmp_path):
    embedder = FakeEmbedder()
    p = make_pipeline(tmp_path, embedder=embedder)
    p.build_from_articles(ARTICLES[:2])
    before = embedder.encoded
    n_new = len(p.chunker.chunk(ARTICLES[2]))
    p.add_articles([ARTICLES[2]])
    assert embedder.encoded - before == n_new
    reference = make_pipeline(tmp_path / "ref")
    reference.build_from_articles(ARTICLES)
    np.testing.assert_allclose(p.state.data.vectors, reference.state.data.vectors)

    before = embedder.encoded
    p.delete_article("a2")
    assert embedder.encoded == before
    assert set(p.state.data.articles) == {"a1", "a3"}
    assert [c.id for c in p.state.data.chunks] == list(range(len(p.state.data.chunks)))
    assert all(c.article_id != "a2" for c in p.state.data.chunks)
    assert p.search("Airbus A380 Toulouse", 5) == [] or all(h.chunk.article_id != "a2" for h in p.search("Airbus A380 Toulouse", 5))
    reloaded = make_pipeline(tmp_path)
    reloaded.load()
    assert set(reloaded.state.data.articles) == {"a1", "a3"}
    with pytest.raises(ArticleNotFoundError):
        p.delete_article("a2")


def test_re_adding_an_article_replaces_it(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES)
    n = len(p.state.data.chunks)
    p.add_articles([ARTICLES[0]])
    assert len(p.state.data.chunks) == n and len(p.articles()) == 3


def test_the_same_id_twice_in_one_write_is_one_article(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES[:1])
    n = len(p.state.data.chunks)
    newer = Article("a2", "Planes v2", "The A380 first flew in 2005.")
    assert p.add_articles([ARTICLES[1], newer]) == ["a2"]
    assert p.state.data.articles["a2"].title == "Planes v2"
    assert len(p.state.data.chunks) == n + len(p.chunker.chunk(newer))
