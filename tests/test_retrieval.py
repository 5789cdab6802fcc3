import math
import random
import re
from collections import Counter

import numpy as np
import pytest

from qa.config import Settings
from qa.index.words import tokenize
from qa.ingest.chunking import Chunker
from qa.pipeline import QAPipeline
from qa.retrieval.hybrid import FilterError, Filters, rrf_fuse
from qa.training.memory_bm25 import BM25
from qa.types import Article
from tests.fakes import FakeEmbedder, FakeReader

WORDS = "treaty missile iran sochi oil tanker election ukraine summit minister apple airbus market price".split()


def corpus(n=40, seed=3):
    rng = random.Random(seed)
    arts = []
    for i in range(n):
        text = " ".join(" ".join(rng.choices(WORDS, k=rng.randint(6, 14))) + "." for _ in range(3))
        arts.append(
            Article(f"a{i}", f"Title {i}", text, date=f"20{10 + i % 10}-01-01", source="Wire" if i % 2 else "Daily")
        )
    return arts


def build(arts, embedder, tmp_path):
    settings = Settings(index_dir=tmp_path / "index", chunk_size=120, chunk_overlap=30)
    p = QAPipeline(settings, embedder, FakeReader())
    p.build_from_articles(arts)
    return p


def reference_bm25(texts, query, k1=1.2, b=0.75):
    docs = [tokenize(t) for t in texts]
    avg = sum(map(len, docs)) / len(docs)
    scores = []
    for d in docs:
        tf = Counter(d)
        s = 0.0
        for term in set(tokenize(query)):
            df = sum(1 for x in docs if term in x)
            if tf[term]:
                idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
                s += idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(d) / avg))
        scores.append(s)
    return np.array(scores)


def chunk_texts(arts):
    chunker = Chunker(120, 30)
    return [c.text for a in arts for c in chunker.chunk(a)]


def test_bm25_matches_a_brute_force_okapi():
    texts = chunk_texts(corpus())
    bm25 = BM25(texts)
    for query in ["treaty with iran", "oil tanker prices", "the sochi summit minister"]:
        np.testing.assert_allclose(bm25.scores(query), reference_bm25(texts, query), rtol=1e-5)


def test_bm25_gives_nothing_for_absent_words():
    bm25 = BM25(["alpha beta", "gamma delta"])
    assert bm25.top("zeta", 5) == []
    assert [r for r, _ in bm25.top("beta zeta", 5)] == [0]


def lucene_bm25_reference(texts, query, k1=1.2, b=0.75):
    """Okapi BM25 as tantivy (and Lucene) define it: idf = ln(1 + (N - n + 0.5) / (n + 0.5)), over
    whole tokens (the test's documents are short enough for tantivy's length encoding to be exact)."""
    docs = [re.findall(r"\w+", t.lower()) for t in texts]
    avg = sum(map(len, docs)) / len(docs)
    out = []
    for d in docs:
        tf = Counter(d)
        s = 0.0
        for term in set(tokenize(query)):
            n = sum(1 for x in docs if term in x)
            idf = math.log(1 + (len(docs) - n + 0.5) / (n + 0.5)) if n else 0.0
            s += idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(d) / avg))
        out.append(s)
    return np.array(out)


def test_the_persisted_lexical_index_ranks_by_okapi_bm25(tmp_path):
    rng = random.Random(11)
    vocab = [f"w{i}" for i in range(120)]
    arts = [
        Article(f"a{i}", f"T{i}", ". ".join(" ".join(rng.choices(vocab, k=rng.randint(5, 12))) for _ in range(3)) + ".")
        for i in range(40)
    ]
    p = build(arts, FakeEmbedder(), tmp_path)
    chunker = Chunker(120, 30)
    texts = [f"{a.title}\n{c.text}" for a in arts for c in chunker.chunk(a)]  # each passage with its title
    for query in ["w1 w2 w3", "the w50 w7", "w100 w101 w17 w90", "t7 w3"]:
        hits = p.search(query, 8, mode="bm25")
        expected = sorted((s for s in lucene_bm25_reference(texts, query) if s > 0), reverse=True)[:8]
        np.testing.assert_allclose([h.score for h in hits], expected, rtol=1e-4)


def test_lexical_matching_is_unicode_aware_and_stemmed(tmp_path):
    arts = [
        Article("t", "Turkey", "President Erdoğan met the mayor of São Paulo."),
        Article("s", "Treaty", "The treaty expires in 2021 unless both sides extend it."),
    ]
    p = build(arts, FakeEmbedder(), tmp_path)
    assert [h.chunk.article_id for h in p.search("Erdogan", 5, mode="bm25")] == ["t"]
    assert [h.chunk.article_id for h in p.search("erdoğan sao paulo", 5, mode="bm25")] == ["t"]
    assert [h.chunk.article_id for h in p.search("When does it expire?", 5, mode="bm25")] == ["s"]
    assert p.search('the "of" AND NEAR(*) OR -', 5, mode="bm25") == []  # query syntax is never read from user text


def test_dense_search_matches_numpy_brute_force(tmp_path):
    embedder = FakeEmbedder()
    arts = corpus()
    p = build(arts, embedder, tmp_path)
    texts = chunk_texts(arts)
    vectors = embedder.encode(texts)
    for query in ["treaty missile", "apple market price", "election in ukraine"]:
        q = embedder.encode([query])[0]
        brute = np.sort(vectors @ q)[::-1][:5]
        hits = p.search(query, 5, mode="dense")
        np.testing.assert_allclose([h.score for h in hits], brute, rtol=1e-5)
        got = embedder.encode([h.chunk.text for h in hits]) @ q
        np.testing.assert_allclose(got, brute, rtol=1e-5)


def test_hybrid_is_reciprocal_rank_fusion_of_both_lists(tmp_path):
    p = build(corpus(), FakeEmbedder(), tmp_path)
    query = "sochi summit"
    dense = [h.chunk.id for h in p.search(query, 10, mode="dense")]
    sparse = [h.chunk.id for h in p.search(query, 10, mode="bm25")]
    hits = p.search(query, 5)
    expected: dict[int, float] = {}
    for ranks in (dense, sparse):
        for i, r in enumerate(ranks):
            expected[r] = expected.get(r, 0) + 1 / (61 + i)
    best = sorted(expected.values(), reverse=True)[:5]
    np.testing.assert_allclose([h.score for h in hits], best)


def test_leaving_one_article_out_is_exact(tmp_path):
    p = build(corpus(), FakeEmbedder(), tmp_path)
    full = p.retriever.retrieve("treaty oil market", 30).hits
    excluded = full[0].chunk.article_id
    got = p.retriever.retrieve("treaty oil market", 5, exclude_article=excluded).hits
    assert got and all(h.chunk.article_id != excluded for h in got)
    # the same as retrieving from an index that never had it
    rest = build([a for a in corpus() if a.id != excluded], FakeEmbedder(), tmp_path / "rest")
    assert [(h.chunk.article_id, h.chunk.start) for h in got] == [
        (h.chunk.article_id, h.chunk.start) for h in rest.search("treaty oil market", 5)
    ]


def test_fusion_ties_go_to_the_bm25_list():
    # 7 is first in dense, 9 first in BM25: equal scores, BM25's wins the tie.
    fused = rrf_fuse(dense=[7, 8], bm25=[9, 10])
    assert [r for r, *_ in fused] == [9, 7, 10, 8]
    assert fused[0][1] == fused[1][1]
    # A row in both lists beats any row in one.
    assert rrf_fuse(dense=[1, 2], bm25=[3, 2])[0][0] == 2


def test_filters_restrict_both_retrievers(tmp_path):
    arts = corpus()
    by_id = {a.id: a for a in arts}
    p = build(arts, FakeEmbedder(), tmp_path)
    f = Filters(source="wire", date_from="2012-01-01", date_to="2014-12-31")
    hits = p.search("treaty oil market", 20, f)
    assert hits
    for h in hits:
        a = by_id[h.chunk.article_id]
        assert a.source == "Wire" and "2012-01-01" <= a.date <= "2014-12-31"
    for mode in ("dense", "bm25"):
        found = p.search("treaty", 10, f, mode)
        assert found and all(by_id[h.chunk.article_id].source == "Wire" for h in found)


@pytest.mark.parametrize(
    "kwargs", [{"date_from": "2020-13-01"}, {"date_to": "soon"}, {"date_from": "2021-01-02", "date_to": "2021-01-01"}]
)
def test_bad_filters_are_refused(kwargs):
    with pytest.raises(FilterError):
        Filters(**kwargs)


def test_a_passage_is_found_by_its_articles_title(tmp_path):
    arts = [
        Article(
            "tx", "Texaco settles with Pennzoil", "The settlement ends a long fight.\n\n" + "Lawyers agreed. " * 60
        ),
        Article("ot", "Oil prices", "Texaco was mentioned once in a story about crude prices."),
    ]
    p = build(arts, FakeEmbedder(), tmp_path)
    hits = p.search("Texaco Pennzoil settlement", 5, mode="bm25")
    assert hits[0].chunk.article_id == "tx"
    # Every passage of the article carries the headline, not only the first.
    found = p.search("Pennzoil", 20, mode="bm25")
    assert {h.chunk.article_id for h in found} == {"tx"} and len(found) == len(Chunker(120, 30).chunk(arts[0])) > 1


def test_a_lexical_index_without_titles_is_rebuilt_when_opened(tmp_path):
    import json

    p = build(
        [Article("tx", "Texaco settles with Pennzoil", "The settlement ends a long fight.")], FakeEmbedder(), tmp_path
    )
    state = next(tmp_path.rglob("lexical.json"))
    state.write_text(json.dumps({"seq": json.loads(state.read_text())["seq"]}))  # as written before titles
    reopened = QAPipeline(p.settings, FakeEmbedder(), FakeReader())
    assert [h.chunk.article_id for h in reopened.search("Pennzoil", 5, mode="bm25")] == ["tx"]
    assert json.loads(state.read_text())["documents"] == "title+passage"
