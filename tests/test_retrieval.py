import math
import random
from collections import Counter

import numpy as np
import pytest

from qa.index.lexical import BM25, tokenize
from qa.ingest.chunking import Chunker
from qa.index.store import IndexSpec, empty_index, with_articles
from qa.retrieval.hybrid import FilterError, Filters, Retriever, rrf_fuse
from qa.types import Article

from tests.fakes import FakeEmbedder

WORDS = "treaty missile iran sochi oil tanker election ukraine summit minister apple airbus market price".split()


def corpus(n=40, seed=3):
    rng = random.Random(seed)
    arts = []
    for i in range(n):
        text = " ".join(" ".join(rng.choices(WORDS, k=rng.randint(6, 14))) + "." for _ in range(3))
        arts.append(Article(f"a{i}", f"Title {i}", text, date=f"20{10 + i % 10}-01-01", source="Wire" if i % 2 else "Daily"))
    return arts


def build(arts, embedder):
    chunker = Chunker(120, 30)
    chunks = {a.id: chunker.chunk(a) for a in arts}
    vectors = embedder.encode([c.text for a in arts for c in chunks[a.id]])
    return with_articles(empty_index(IndexSpec(embedder.name, embedder.dim, 120, 30)), arts, chunks, vectors)


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


def test_bm25_matches_a_brute_force_okapi():
    texts = [c.text for c in build(corpus(), FakeEmbedder()).chunks]
    bm25 = BM25(texts)
    for query in ["treaty with iran", "oil tanker prices", "the sochi summit minister"]:
        np.testing.assert_allclose(bm25.scores(query), reference_bm25(texts, query), rtol=1e-5)


def test_bm25_gives_nothing_for_absent_words():
    bm25 = BM25(["alpha beta", "gamma delta"])
    assert bm25.top("zeta", 5) == []
    assert [r for r, _ in bm25.top("beta zeta", 5)] == [0]


def test_dense_search_matches_numpy_brute_force():
    embedder = FakeEmbedder()
    data = build(corpus(), embedder)
    retriever = Retriever(data, embedder)
    for query in ["treaty missile", "apple market price", "election in ukraine"]:
        q = embedder.encode([query])[0]
        expected = np.argsort(-(data.vectors @ q), kind="stable")[:5]
        got = [r for r, _ in retriever.dense(query, 5)]
        brute = data.vectors @ q
        np.testing.assert_allclose(sorted(brute[got], reverse=True), brute[expected], rtol=1e-5)


def test_hybrid_is_reciprocal_rank_fusion_of_both_lists():
    embedder = FakeEmbedder()
    data = build(corpus(), embedder)
    retriever = Retriever(data, embedder, dense_k=10, bm25_k=10, rrf_k=60)
    query = "sochi summit"
    dense = [r for r, _ in retriever.dense(query, 10)]
    sparse = [r for r, _ in retriever.bm25.top(query, 10)]
    hits = retriever.search(query, 5)
    expected = {}
    for ranks in (dense, sparse):
        for i, r in enumerate(ranks):
            expected[r] = expected.get(r, 0) + 1 / (61 + i)
    best = sorted(expected.values(), reverse=True)[:5]
    np.testing.assert_allclose([h.score for h in hits], best)


def test_fusion_ties_go_to_the_bm25_list():
    # 7 is first in dense, 9 first in BM25: equal scores, BM25's wins the tie.
    fused = rrf_fuse(dense=[7, 8], bm25=[9, 10])
    assert [r for r, *_ in fused] == [9, 7, 10, 8]
    assert fused[0][1] == fused[1][1]
    # A row in both lists beats any row in one.
    assert rrf_fuse(dense=[1, 2], bm25=[3, 2])[0][0] == 2


def test_filters_restrict_both_retrievers():
    embedder = FakeEmbedder()
    arts = corpus()
    data = build(arts, embedder)
    retriever = Retriever(data, embedder)
    f = Filters(source="wire", date_from="2012-01-01", date_to="2014-12-31")
    hits = retriever.search("treaty oil market", 20, f)
    assert hits
    for h in hits:
        a = data.articles[h.chunk.article_id]
        assert a.source == "Wire" and "2012-01-01" <= a.date <= "2014-12-31"
    for mode in ("dense", "bm25"):
        assert all(data.articles[h.chunk.article_id].source == "Wire" for h in retriever.search("treaty", 10, f, mode))


@pytest.mark.parametrize("kwargs", [{"date_from": "2020-13-01"}, {"date_to": "soon"}, {"date_from": "2021-01-02", "date_to": "2021-01-01"}])
def test_bad_filters_are_refused(kwargs):
    with pytest.raises(FilterError):
        Filters(**kwargs)
