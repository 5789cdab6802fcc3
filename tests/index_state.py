"""What an index holds, read straight from its database, for comparing two indexes."""

from __future__ import annotations

from dataclasses import dataclass, field

from qa.index import db
from qa.pipeline import QAPipeline
from qa.types import Article, Chunk


@dataclass(frozen=True)
class IndexState:
    """Equal when two indexes hold the same articles, the same passages (by article and
    offsets: ids depend on history) and the same vectors for them."""

    articles: dict[str, Article]
    vectors: dict[tuple[str, int, int], tuple[float, ...]]
    passages: list[Chunk] = field(compare=False)


def index_state(pipeline: QAPipeline) -> IndexState:
    gen = pipeline.store.generation()
    conn = db.connect(gen.path)
    try:
        conn.execute("BEGIN")
        articles = {a.id: a for a in db.iter_articles(conn)}
        ids = [r[0] for r in conn.execute("SELECT id FROM passages ORDER BY id")]
        passages = db.passages(conn, ids)
        found, vectors = db.vectors(conn, ids, gen.spec.dim)
        conn.execute("COMMIT")
    finally:
        conn.close()
    by_key = {
        (passages[i].article_id, passages[i].start, passages[i].end): tuple(v.round(6))
        for i, v in zip(found.tolist(), vectors, strict=True)
    }
    return IndexState(articles, by_key, [passages[i] for i in ids])
