"""The index store: generations, incremental writes, following other processes, recovery."""

import fcntl
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from qa.config import Settings
from qa.index import db
from qa.index.store import (
    IndexConflictError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexRestoreNeededError,
)
from qa.index.tantivy_engine import TantivyLexical
from qa.pipeline import ArticleNotFoundError, QAPipeline
from qa.types import Article
from tests.fakes import FakeEmbedder, FakeReader
from tests.index_state import index_state

ROOT = Path(__file__).resolve().parent.parent

ARTICLES = [
    Article("a1", "Treaty", "New Start is set to expire in 2021. It limits missiles.", "2019-05-14", "Times"),
    Article("a2", "Planes", "The A380 first flew in 2005. Airbus built it in Toulouse.", "2005-04-27", "Wikinews"),
    Article("a3", "Apple", "Apple released Tiger in 2005. Steve Jobs presented it.", "2005-05-07", "Wikinews"),
]


def make_pipeline(tmp_path, embedder=None, **overrides):
    settings = Settings(
        index_dir=tmp_path / "index", chunk_size=200, chunk_overlap=50, no_answer_threshold=0.5, **overrides
    )
    return QAPipeline(settings, embedder=embedder or FakeEmbedder(), reader=FakeReader())


def current_folder(tmp_path):
    root = tmp_path / "index"
    return root / (root / "CURRENT").read_text().strip()


def test_save_and_load_round_trip(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES)
    q = make_pipeline(tmp_path)
    q.load()
    assert index_state(q) == index_state(p)
    assert {a.id: a for a in q.articles()[0]} == {a.id: a for a in ARTICLES}
    conn = sqlite3.connect(current_folder(tmp_path) / "store.sqlite")
    fmt, spec = db.read_spec(conn)
    assert fmt == db.FORMAT_VERSION and spec == db.IndexSpec("fake-embedder", 64, 200, 50)


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(IndexNotFoundError, match="qa index"):
        make_pipeline(tmp_path).load()


def test_other_settings_or_embedder_are_refused_with_the_difference(tmp_path):
    make_pipeline(tmp_path).build_from_articles(ARTICLES)
    with pytest.raises(IndexMismatchError, match="chunk_size: index has 200, settings ask 300"):
        QAPipeline(
            Settings(index_dir=tmp_path / "index", chunk_size=300, chunk_overlap=50), FakeEmbedder(), FakeReader()
        ).load()
    other = FakeEmbedder()
    other.name = "other-embedder"
    with pytest.raises(IndexMismatchError, match="embedder"):
        make_pipeline(tmp_path, embedder=other).load()


def test_a_damaged_database_is_detected_and_the_message_says_how_to_recover(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES)
    p.build_from_articles(ARTICLES[:2])  # a second generation; the first is kept for --restore
    path = current_folder(tmp_path) / "store.sqlite"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match="qa index --restore g000001"):
        make_pipeline(tmp_path).load()


def test_a_damaged_dense_checkpoint_is_rebuilt_from_the_stored_vectors(tmp_path, caplog):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES)
    before = index_state(p)
    (checkpoint,) = current_folder(tmp_path).glob("dense-*.faiss")
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    q = make_pipeline(tmp_path)
    q.load()
    assert "rebuilding it from the stored vectors" in caplog.text
    assert index_state(q) == before
    assert [h.chunk.article_id for h in q.search("Airbus Toulouse", 1, mode="dense")] == ["a2"]


def test_a_lexical_index_left_behind_by_a_crashed_writer_is_caught_up_at_the_next_open(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES[:2])
    # A writer killed between its SQLite commit and its tantivy commit: the article is stored,
    # the lexical index does not have it yet.
    chunks = p.chunker.chunk(ARTICLES[2])
    conn = db.connect(current_folder(tmp_path) / "store.sqlite")
    with db.transaction(conn):
        db.insert_article(conn, ARTICLES[2], chunks, FakeEmbedder().encode([c.text for c in chunks]))
        seq = db.finish_write(conn)
    assert json.loads((current_folder(tmp_path) / "lexical.json").read_text())["seq"] < seq
    q = make_pipeline(tmp_path)
    q.load()
    assert [h.chunk.article_id for h in q.search("Apple Tiger Steve Jobs", 1, mode="bm25")] == ["a3"]
    assert json.loads((current_folder(tmp_path) / "lexical.json").read_text())["seq"] == seq


def test_a_damaged_or_missing_lexical_index_is_rebuilt_from_the_passages(tmp_path, caplog):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES)
    lexical = current_folder(tmp_path) / "lexical"
    (lexical / "meta.json").write_text("{not json")
    q = make_pipeline(tmp_path)
    q.load()
    assert "lexical index" in caplog.text and "rebuilding it from the passages" in caplog.text
    assert [h.chunk.article_id for h in q.search("Airbus Toulouse", 1, mode="bm25")] == ["a2"]
    shutil.rmtree(lexical)
    r = make_pipeline(tmp_path)
    r.load()
    assert [h.chunk.article_id for h in r.search("Steve Jobs", 1, mode="bm25")] == ["a3"]


def test_an_index_of_format_2_with_its_fts5_table_is_upgraded_keeping_everything(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES)
    before = index_state(p)
    folder = current_folder(tmp_path)
    conn = db.connect(folder / "store.sqlite")
    tokenizer = "porter unicode61 remove_diacritics 2"
    conn.execute(f"CREATE VIRTUAL TABLE passage_fts USING fts5 (text, content='', tokenize='{tokenizer}')")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'format_version'")
    conn.close()
    shutil.rmtree(folder / "lexical")
    (folder / "lexical.json").unlink()
    q = make_pipeline(tmp_path)
    q.load()
    assert index_state(q) == before
    conn = db.connect(folder / "store.sqlite")
    assert db.read_spec(conn)[0] == db.FORMAT_VERSION
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'passage_fts'").fetchone()[0] == 0
    assert [h.chunk.article_id for h in q.search("Airbus Toulouse", 1, mode="bm25")] == ["a2"]


def test_the_full_check_compares_the_derived_indexes_with_the_stored_passages(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES)
    assert p.store.check() == "ok"
    n = p.counts().passages
    lexical = TantivyLexical(current_folder(tmp_path) / "lexical")
    lexical.delete_ids([index_state(p).passages[0].id])  # lost from tantivy behind the store's back
    lexical.commit()
    lexical.close()
    assert p.store.check() == f"the lexical index holds {n - 1} passages, the database {n}"


def test_out_of_range_offsets_are_refused_when_read(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES[:1])
    conn = db.connect(current_folder(tmp_path) / "store.sqlite")
    conn.execute('UPDATE passages SET "end" = 99999')
    with pytest.raises(IndexCorruptError, match="outside its article"):
        make_pipeline(tmp_path).search("New Start", 1)


def test_a_crash_mid_build_leaves_the_previous_generation_current(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES[:2])
    root = tmp_path / "index"
    (root / ".tmp-g000002-999").mkdir()  # what a crash before the commit point leaves
    (root / ".tmp-g000002-999" / "store.sqlite").write_bytes(b"partial")
    q = make_pipeline(tmp_path)
    q.load()
    assert {a.id for a in q.articles()[0]} == {"a1", "a2"}
    q.build_from_articles(ARTICLES)  # the next build cleans the leftovers up
    assert sorted(x.name for x in root.iterdir()) == ["CURRENT", "LOCK", "g000001", "g000002"]


def test_missing_current_never_rebuilds_over_existing_generations(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES)
    p.add_articles([Article("api1", "Added later", "Added through the API in 2024.")])
    (tmp_path / "index" / "CURRENT").unlink()
    q = make_pipeline(tmp_path)
    with pytest.raises(IndexRestoreNeededError, match="qa index --restore g000001"):
        q.load_or_build()
    assert (current_folder_candidates := sorted(x.name for x in (tmp_path / "index").glob("g*"))) == ["g000001"]
    q.store.restore(current_folder_candidates[0])
    assert {a.id for a in q.articles()[0]} == {"a1", "a2", "a3", "api1"}


def test_writes_cost_their_own_articles_and_match_a_fresh_build(tmp_path):
    embedder = FakeEmbedder()
    p = make_pipeline(tmp_path, embedder=embedder)
    p.build_from_articles(ARTICLES[:2])
    before = embedder.encoded
    p.add_articles([ARTICLES[2]])
    assert embedder.encoded - before == len(p.chunker.chunk(ARTICLES[2]))
    reference = make_pipeline(tmp_path / "ref")
    reference.build_from_articles(ARTICLES)
    assert index_state(p) == index_state(reference)

    ids_before = {c.id for c in index_state(p).passages}
    before = embedder.encoded
    p.delete_article("a2")
    assert embedder.encoded == before
    assert {a.id for a in p.articles()[0]} == {"a1", "a3"}
    assert {c.id for c in index_state(p).passages} < ids_before  # the others keep their ids
    assert all(h.chunk.article_id != "a2" for h in p.search("Airbus A380 Toulouse", 5))
    reloaded = make_pipeline(tmp_path)
    reloaded.load()
    assert index_state(reloaded) == index_state(p)
    with pytest.raises(ArticleNotFoundError):
        p.delete_article("a2")


def test_re_adding_an_article_replaces_it(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES)
    n = p.counts().passages
    p.add_articles([ARTICLES[0]])
    assert p.counts().passages == n and p.counts().articles == 3


def test_the_same_id_twice_in_one_write_is_one_article(tmp_path):
    p = make_pipeline(tmp_path)
    p.build_from_articles(ARTICLES[:1])
    n = p.counts().passages
    newer = Article("a2", "Planes v2", "The A380 first flew in 2005.")
    assert p.add_articles([ARTICLES[1], newer]) == ["a2"]
    assert p.article("a2").title == "Planes v2"
    assert p.counts().passages == n + len(p.chunker.chunk(newer))


def test_a_process_sees_what_another_process_wrote_without_restarting(tmp_path):
    server = make_pipeline(tmp_path)
    server.build_from_articles(ARTICLES[:2])
    assert server.search("Apple Tiger Steve Jobs", 1, mode="bm25") == []
    child = textwrap.dedent(f"""
        from qa.config import Settings
        from qa.pipeline import QAPipeline
        from qa.types import Article
        from tests.fakes import FakeEmbedder, FakeReader
        settings = Settings(index_dir={str(tmp_path / "index")!r}, chunk_size=200, chunk_overlap=50)
        p = QAPipeline(settings, FakeEmbedder(), FakeReader())
        p.load()
        p.add_articles([Article({ARTICLES[2].id!r}, {ARTICLES[2].title!r}, {ARTICLES[2].text!r})])
        p.delete_article("a1")
    """)
    subprocess.run([sys.executable, "-c", child], check=True, cwd=ROOT, timeout=120)
    # `qa ingest` in another process: the server's next question sees it, dense and lexical.
    assert [h.chunk.article_id for h in server.search("Apple Tiger Steve Jobs", 1, mode="dense")] == ["a3"]
    assert [h.chunk.article_id for h in server.search("Apple Tiger Steve Jobs", 1, mode="bm25")] == ["a3"]
    assert {a.id for a in server.articles()[0]} == {"a2", "a3"}
    server.delete_article("a2")  # and its own writes go on top, nothing lost
    assert {a.id for a in make_pipeline(tmp_path).articles()[0]} == {"a3"}


def test_a_write_while_another_process_holds_the_index_says_who(tmp_path):
    p = make_pipeline(tmp_path, write_lock_timeout_s=0.2)
    p.build_from_articles(ARTICLES[:1])
    with open(tmp_path / "index" / "LOCK", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write("pid 4242 (qa ingest)")
        fh.flush()
        with pytest.raises(IndexConflictError, match="pid 4242"):
            p.add_articles([ARTICLES[1]])
    p.add_articles([ARTICLES[1]])
    assert p.counts().articles == 2


def test_the_article_list_is_paged_newest_first_and_filtered(tmp_path):
    p = make_pipeline(tmp_path)
    undated = Article("u", "Undated", "No date on this one from 1999.")
    p.build_from_articles([*ARTICLES, undated])
    page, total = p.articles(0, 2)
    assert total == 4 and [a.id for a in page] == ["a1", "a3"]
    page, total = p.articles(2, 2)
    assert [a.id for a in page] == ["a2", "u"]
    page, total = p.articles(0, 10, contains="wikinews")
    assert total == 2 and {a.id for a in page} == {"a2", "a3"}


def test_the_dense_index_turns_approximate_past_the_threshold_and_keeps_finding(tmp_path):
    rng = np.random.default_rng(5)
    arts = [
        Article(f"x{i}", f"T{i}", " ".join(f"w{j}" for j in rng.choice(400, 12, replace=False)) + " in 2020.")
        for i in range(300)
    ]
    p = make_pipeline(tmp_path, ivf_threshold=200, ivf_nprobe=64)
    p.build_from_articles(arts[:150])
    assert json.loads((current_folder(tmp_path) / "dense.json").read_text())["kind"] == "flat"
    p.add_articles(arts[150:])
    p.store.generation().checkpoint()
    meta = json.loads((current_folder(tmp_path) / "dense.json").read_text())
    assert meta["kind"] == "ivf" and meta["ntotal"] == 300
    exact = make_pipeline(tmp_path / "exact")
    exact.build_from_articles(arts)
    for a in arts[::30]:
        hits = p.search(a.text, 10, mode="dense")
        got = {h.chunk.article_id for h in hits}
        want = {h.chunk.article_id for h in exact.search(a.text, 10, mode="dense")}
        assert a.id in got and len(got & want) >= 8  # probing 64 of 69 lists: a neighbour may be missed
        # The candidates are rescored with their stored float vectors, not their 8-bit codes:
        # the passage itself comes first with the exact score of identical vectors.
        assert hits[0].chunk.article_id == a.id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    p.delete_article("x0")
    assert all(h.chunk.article_id != "x0" for h in p.search(arts[0].text, 10, mode="dense"))
    q = make_pipeline(tmp_path, ivf_threshold=200, ivf_nprobe=64)  # a fresh process loads the IVF checkpoint
    q.load()
    assert q.store.generation().dense.kind == "ivf"
    assert index_state(q) == index_state(p)


def test_an_index_of_the_old_format_is_converted_keeping_its_articles(tmp_path):
    import faiss

    root = tmp_path / "index"
    old = root / "v000007"
    old.mkdir(parents=True)
    embedder = FakeEmbedder()
    p = make_pipeline(tmp_path / "ref", embedder=embedder)
    chunks = [c for a in ARTICLES for c in p.chunker.chunk(a)]
    (old / "articles.jsonl").write_text("".join(json.dumps(a.__dict__) + "\n" for a in ARTICLES))
    (old / "chunks.jsonl").write_text("".join(json.dumps([c.article_id, c.start, c.end]) + "\n" for c in chunks))
    index = faiss.IndexFlatIP(64)
    index.add(embedder.encode([c.text for c in chunks]))
    faiss.write_index(index, str(old / "dense.faiss"))
    (old / "manifest.json").write_text(json.dumps({"format_version": 1}))
    (root / "CURRENT").write_text("v000007\n")
    q = make_pipeline(tmp_path)
    assert q.load_or_build() is None  # converted, not rebuilt from the seeds
    p.build_from_articles(ARTICLES)
    assert index_state(q) == index_state(p)
    assert not (root / "v000007").exists() or (root / "CURRENT").read_text().strip() == "g000001"
