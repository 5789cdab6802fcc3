import sqlite3

import pytest

from bench.fts5_lexical import Fts5Lexical
from qa.index.tantivy_engine import LexicalIndexError, TantivyLexical, fold, query_terms

DOCS = [
    (10, "Erdoğan met the Greek prime minister in Ankara on Tuesday."),
    (11, "Flooding in São Paulo closed the airport for two days."),
    (12, "The New START treaty expires in February unless both sides extend it."),
    (13, "Oil prices rose after the tanker was seized in the Strait of Hormuz."),
    (14, "The minister said the talks in Sochi would continue next year."),
]
TEXT = dict(DOCS)


class Fts5Backend:
    name = "fts5"

    def __init__(self, path):
        self.path = path / "store.sqlite"
        self.conn = None

    def open(self):
        self.conn = sqlite3.connect(self.path)
        return Fts5Lexical(self.conn)

    def close(self, index):
        assert self.conn is not None, "closed before it was opened"
        self.conn.close()


class TantivyBackend:
    name = "tantivy"

    def __init__(self, path):
        self.path = path / "tantivy"

    def open(self):
        return TantivyLexical(self.path, heap_bytes=15_000_000)

    def close(self, index):
        index.close()


@pytest.fixture(params=[Fts5Backend, TantivyBackend], ids=lambda b: b.name)
def backend(request, tmp_path):
    return request.param(tmp_path)


@pytest.fixture
def index(backend):
    idx = backend.open()
    idx.add(DOCS)
    idx.commit()
    yield idx
    backend.close(idx)


def ids(hits):
    return [i for i, _ in hits]


def test_search_ranks_the_matching_passage_first_with_positive_scores(index):
    hits = index.search("oil tanker in Hormuz", 5)
    assert ids(hits) == [13]
    assert hits[0][1] > 0
    two = index.search("minister", 5)
    assert sorted(ids(two)) == [10, 14]
    assert two[0][1] >= two[1][1]


def test_k_limits_the_hits(index):
    assert len(index.search("minister", 1)) == 1
    assert index.search("minister", 0) == []


@pytest.mark.parametrize("query", ["Erdogan", "erdoğan", "ERDOĞAN", "Erdoğan's visit"])
def test_diacritics_and_case_are_folded(index, query):
    assert ids(index.search(query, 5)) == [10]


def test_sao_paulo_is_found_without_the_tilde(index):
    assert ids(index.search("Sao Paulo", 5)) == [11]
    assert ids(index.search("são paulo", 5)) == [11]


def test_words_are_stemmed(index):
    assert ids(index.search("expire", 5)) == [12]
    assert ids(index.search("extending", 5)) == [12]
    assert ids(index.search("flooded", 5)) == [11]


def test_stopword_only_query_returns_nothing(index):
    assert index.search("what is the", 5) == []
    assert index.search("", 5) == []
    assert index.search("   ?!  ", 5) == []


def test_allowed_ids_restrict_the_hits(index):
    assert sorted(ids(index.search("minister", 5))) == [10, 14]
    assert ids(index.search("minister", 5, allowed_ids=[14, 12])) == [14]
    assert index.search("minister", 5, allowed_ids=[11, 12]) == []
    assert index.search("minister", 5, allowed_ids=[]) == []


def test_allowed_ids_do_not_change_scores(index):
    full = dict(index.search("minister talks", 5))
    allowed = dict(index.search("minister talks", 5, allowed_ids=[14]))
    assert allowed[14] == pytest.approx(full[14])


def test_delete_and_readd(index):
    index.delete([(12, TEXT[12])])
    index.commit()
    assert index.search("treaty expires", 5) == []
    assert ids(index.search("minister", 5)) != []  # the others are untouched
    index.add([(12, "The treaty expires next week, officials said.")])
    index.commit()
    assert ids(index.search("treaty expire", 5)) == [12]
    assert index.search("February", 5) == []  # the old text's words went with the delete


def test_delete_then_readd_in_one_commit(index):
    index.delete([(13, TEXT[13])])
    index.add([(13, "Tanker traffic resumed in the strait.")])
    index.commit()
    assert ids(index.search("tanker", 5)) == [13]
    assert index.search("oil prices", 5) == []


def test_index_persists_across_reopen(backend):
    first = backend.open()
    first.add(DOCS)
    first.commit()
    queries = ["minister", "Sao Paulo floods", "expire", "Strait of Hormuz oil"]
    before = [first.search(q, 5) for q in queries]
    first.delete([(14, TEXT[14])])
    first.commit()
    after_delete = [first.search(q, 5) for q in queries]
    backend.close(first)

    again = backend.open()
    assert [again.search(q, 5) for q in queries] == after_delete
    assert after_delete != before  # the delete is what persisted, not the first state
    again.add([(15, "A new minister was sworn in.")])
    again.commit()
    assert 15 in ids(again.search("minister", 5))
    backend.close(again)


HOSTILE = [
    '"',
    '""',
    "'",
    "*",
    "a*",
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR(minister oil)",
    "minister AND",
    "AND OR NOT",
    "minister NEAR/2 oil",
    "text:minister",
    "pid:10",
    "(minister",
    "minister)",
    "^",
    "minister^2",
    "{}",
    "[1 TO 5]",
    "-oil",
    "+oil",
    "minister -",
    "\\",
    "col:",
    ":",
    "~",
    "oil~2",
    '"unterminated minister',
    "minister' OR 1=1 --",
    "\x00",
    "_",
    "__init__",
    "²",
    "🙂 oil",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_query_syntax_in_user_input_never_raises(index, query):
    hits = index.search(query, 5)
    words = query_terms(query)
    if not words:
        assert hits == []
    else:  # operators are plain words: 'minister AND' finds the minister passages
        assert all(i in TEXT for i in ids(hits))


def test_operator_words_are_searched_as_words(index):
    assert sorted(ids(index.search("NEAR(minister oil)", 5))) == [10, 13, 14]
    assert ids(index.search("oil*", 5)) == [13]


def test_query_terms_fold_casefold_and_drop_stopwords():
    assert query_terms("What did Erdoğan's ﬁrm do in São Paulo?") == ["erdogan", "firm", "sao", "paulo"]
    assert query_terms("İstanbul foo_bar foo") == ["istanbul", "foo", "bar"]
    assert fold("plain ascii") == "plain ascii"


def test_fts5_writes_join_the_callers_transaction(tmp_path):
    path = tmp_path / "store.sqlite"
    conn = sqlite3.connect(path)
    idx = Fts5Lexical(conn)
    idx.add(DOCS[:1])
    assert ids(idx.search("Erdogan", 5)) == [10]  # visible to its own connection at once
    conn.rollback()  # the caller's transaction decides
    assert idx.search("Erdogan", 5) == []
    idx.add(DOCS[:1])
    conn.commit()
    conn.close()
    other = Fts5Lexical(sqlite3.connect(path))
    assert ids(other.search("Erdogan", 5)) == [10]


def test_fts5_rejects_a_table_name_that_is_not_plain():
    with pytest.raises(ValueError):
        Fts5Lexical(sqlite3.connect(":memory:"), table="x; DROP TABLE y")


def test_tantivy_second_writer_is_a_clear_error(tmp_path):
    a = TantivyLexical(tmp_path / "t", heap_bytes=15_000_000)
    a.add(DOCS)
    b = TantivyLexical(tmp_path / "t", heap_bytes=15_000_000)
    with pytest.raises(LexicalIndexError, match="locked"):
        b.add(DOCS)
    a.commit()
    b.index.reload()
    assert ids(b.search("Erdogan", 5)) == [10]  # a reader beside the writer sees its commits
    a.close()


def test_tantivy_writes_are_invisible_until_commit(tmp_path):
    idx = TantivyLexical(tmp_path / "t", heap_bytes=15_000_000)
    idx.add(DOCS)
    assert idx.search("Erdogan", 5) == []
    idx.commit()
    assert ids(idx.search("Erdogan", 5)) == [10]
    idx.close()


@pytest.mark.parametrize("max_fetch", [0, 4000], ids=["ids-in-query", "filter-after"])
def test_filtered_search_is_exact_whichever_way_it_runs(backend, max_fetch):
    """Tantivy filters after an over-fetched search (and falls back) or puts the ids in the query."""
    # 2,490 short passages score high for 'alpha'; the 10 allowed ones are long and score low,
    # so the unfiltered top holds none of them and a filter-after search must fall back.
    rows = [(i, f"alpha beta{i}") for i in range(2490)]
    rows += [(i, "alpha " + " ".join(f"filler{j}" for j in range(60))) for i in range(2490, 2500)]
    idx = backend.open()
    idx.add(rows)
    idx.commit()
    if isinstance(idx, TantivyLexical):
        idx.max_fetch, idx.fetch_per_allowed_id = max_fetch, 10**6
    everything = idx.search("alpha", 3000)
    assert len(everything) == 2500
    for allowed, k in [
        (range(2490, 2500), 4),
        (range(2490, 2500), 1),
        (range(0, 2500, 3), 7),
        (range(2480, 2500), 15),
        ([5, 2499], 10),
    ]:
        allowed = list(allowed)
        expected = [h for h in everything if h[0] in set(allowed)][:k]
        got = idx.search("alpha", k, allowed_ids=allowed)
        assert ids(got) == ids(expected)
        assert [s for _, s in got] == pytest.approx([s for _, s in expected])
    backend.close(idx)


def test_tantivy_folder_with_another_index_is_a_clear_error(tmp_path):
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("body")
    tantivy.Index(builder.build(), path=str(tmp_path))
    with pytest.raises(LexicalIndexError, match="schema does not match"):
        TantivyLexical(tmp_path)
