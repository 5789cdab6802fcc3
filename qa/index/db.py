"""The archive's source of truth: one SQLite database per index generation.

Tables
    meta      key/value: format version, the spec the vectors depend on, the change sequence number
    articles  one row per article (the only copy of its text)
    passages  id (stable, never reused), article id and character offsets: the text is
              articles.text[start:end], never copied
    vectors   a passage's float32 embedding (the FAISS index is derived from these)
    changes   the log of passage ids added (+1) and removed (-1), numbered by seq; the derived
              indexes (FAISS: dense.py, tantivy: lexical_index.py) follow the archive by replaying it.
              Pruned below the lowest seq anything still replays from (prune_changes); meta
              "log_floor" says up to which seq rows are gone, so a follower further behind
              reloads a checkpoint instead of replaying a log with a hole in it

Every write is one SQLite transaction (WAL, synchronous=FULL: a commit is on disk, in the WAL,
before it is acknowledged; the WAL is copied into the database file and emptied at every FAISS
checkpoint and when a server stops), so a crash leaves the state from before or after it, and
readers in any thread or process read one consistent snapshot while a write goes on. Costs,
n = passages in the archive, m = passages changed: add or delete O(m log n); a lookup of
passages or articles by id O(log n) each.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from qa.types import Article, Chunk

FORMAT_VERSION = 3  # 2 had an FTS5 table, replaced by tantivy (lexical_index.py): see upgrade()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL,
    date TEXT, source TEXT, url TEXT
);
CREATE INDEX IF NOT EXISTS articles_by_date ON articles (date DESC, title COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id TEXT NOT NULL REFERENCES articles (id),
    start INTEGER NOT NULL CHECK (start >= 0),
    "end" INTEGER NOT NULL CHECK ("end" > start)
);
CREATE INDEX IF NOT EXISTS passages_by_article ON passages (article_id);
CREATE TABLE IF NOT EXISTS vectors (id INTEGER PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, passage_id INTEGER NOT NULL, op INTEGER NOT NULL
);
"""


class StoreError(RuntimeError):
    """The database cannot be read as an index (wrapped into the store's errors by the caller)."""


@dataclass(frozen=True)
class IndexSpec:
    """What the vectors and passages depend on; an index is only usable under the same spec."""

    embedder: str
    dim: int
    chunk_size: int
    chunk_overlap: int


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are explicit (BEGIN / COMMIT)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a write acknowledged to the user is on disk, not only in the OS cache.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def create(conn: sqlite3.Connection, spec: IndexSpec) -> None:
    conn.executescript(_SCHEMA)
    with transaction(conn):
        put_meta(conn, "format_version", FORMAT_VERSION)
        put_meta(conn, "spec", asdict(spec))
        put_meta(conn, "seq", 0)
        put_meta(conn, "counts", {"articles": 0, "passages": 0})


class transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception; mode "DEFERRED" for a read
    snapshot (every read of it sees one version of the database)."""

    def __init__(self, conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> None:
        self.conn, self.mode = conn, mode

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute(f"BEGIN {self.mode}")
        return self.conn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def get_meta(conn: sqlite3.Connection, key: str) -> Any:  # a JSON value
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise StoreError(f"meta key {key!r} is missing")
    return json.loads(row[0])


def find_meta(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    """A meta value that may be absent (keys added after format 3, e.g. "lost_writes")."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def put_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))


def read_spec(conn: sqlite3.Connection) -> tuple[int, IndexSpec]:
    return int(get_meta(conn, "format_version")), IndexSpec(**get_meta(conn, "spec"))


UPGRADABLE = {2}


def upgrade(conn: sqlite3.Connection) -> None:
    """Format 2 -> 3: drop the FTS5 table (the tantivy index is built from the passages by its
    first catch-up). Articles, passages, vectors and the change log are kept as they are."""
    with transaction(conn):
        conn.execute("DROP TABLE IF EXISTS passage_fts")
        put_meta(conn, "format_version", FORMAT_VERSION)


def _article(row: Sequence) -> Article:
    return Article(id=row[0], title=row[1], text=row[2], date=row[3], source=row[4], url=row[5])


_ARTICLE_COLUMNS = "id, title, text, date, source, url"


# ---- writes (inside a transaction) ---------------------------------------------------------------
def _log(conn: sqlite3.Connection, ids: Iterable[int], op: int) -> None:
    conn.executemany("INSERT INTO changes (passage_id, op) VALUES (?, ?)", ((i, op) for i in ids))


def delete_articles(conn: sqlite3.Connection, article_ids: Iterable[str]) -> int:
    """Remove articles and their passages; returns how many articles existed."""
    removed = 0
    for aid in article_ids:
        if conn.execute("SELECT 1 FROM articles WHERE id = ?", (aid,)).fetchone() is None:
            continue
        passages = [r[0] for r in conn.execute("SELECT id FROM passages WHERE article_id = ?", (aid,))]
        conn.executemany("DELETE FROM vectors WHERE id = ?", ((pid,) for pid in passages))
        conn.execute("DELETE FROM passages WHERE article_id = ?", (aid,))
        conn.execute("DELETE FROM articles WHERE id = ?", (aid,))
        _log(conn, passages, -1)
        _bump_counts(conn, -1, -len(passages))
        removed += 1
    return removed


def insert_article(
    conn: sqlite3.Connection, article: Article, chunks: Sequence[Chunk], vectors: np.ndarray
) -> list[int]:
    """Insert one article (replace it first if its id exists) with its passages and their vectors."""
    delete_articles(conn, [article.id])
    a = article
    conn.execute(
        f"INSERT INTO articles ({_ARTICLE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (a.id, a.title, a.text, a.date, a.source, a.url),
    )
    ids = []
    for chunk, vector in zip(chunks, vectors, strict=True):
        if a.text[chunk.start : chunk.end] != chunk.text:
            raise StoreError(f"passage {chunk.start}-{chunk.end} does not match article {a.id!r}")
        cur = conn.execute(
            'INSERT INTO passages (article_id, start, "end") VALUES (?, ?, ?)', (a.id, chunk.start, chunk.end)
        )
        assert cur.lastrowid is not None  # an INSERT always sets it
        pid = cur.lastrowid
        conn.execute(
            "INSERT INTO vectors (id, v) VALUES (?, ?)", (pid, np.ascontiguousarray(vector, np.float32).tobytes())
        )
        ids.append(pid)
    _log(conn, ids, +1)
    _bump_counts(conn, +1, len(ids))
    return ids


def _bump_counts(conn: sqlite3.Connection, articles: int, passages: int) -> None:
    counts = get_meta(conn, "counts")
    put_meta(conn, "counts", {"articles": counts["articles"] + articles, "passages": counts["passages"] + passages})


def finish_write(conn: sqlite3.Connection) -> int:
    """Record the write's sequence number (the last change's); returns it. A write that changed
    no passage keeps the seq it found (the log may have been pruned empty: max() is then NULL)."""
    row = conn.execute("SELECT max(seq) FROM changes").fetchone()
    seq = max(int(row[0] or 0), int(get_meta(conn, "seq")))
    put_meta(conn, "seq", seq)
    return seq


# ---- the change log's length ---------------------------------------------------------------------
def log_floor(conn: sqlite3.Connection) -> int:
    """The highest seq pruned from the change log (0: nothing ever was): the log holds every
    change after it, none at or before it."""
    return int(find_meta(conn, "log_floor", 0))


def prune_changes(conn: sqlite3.Connection, upto: int) -> int:
    """Delete the change-log rows with seq <= upto and record the new floor (inside a write
    transaction; one DELETE along the primary key: O(rows deleted)). Returns the rows deleted."""
    if upto <= log_floor(conn):
        return 0
    deleted = conn.execute("DELETE FROM changes WHERE seq <= ?", (upto,)).rowcount
    put_meta(conn, "log_floor", upto)
    return int(deleted)


def change_rows(conn: sqlite3.Connection, after: int, upto: int) -> list[tuple[int, int, int]]:
    """(seq, passage id, op) of the changes after < seq <= upto, in order."""
    return [
        (int(s), int(p), int(o))
        for s, p, o in conn.execute(
            "SELECT seq, passage_id, op FROM changes WHERE seq > ? AND seq <= ? ORDER BY seq", (after, upto)
        )
    ]


# ---- reads ---------------------------------------------------------------------------------------
def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    c = get_meta(conn, "counts")
    return int(c["articles"]), int(c["passages"])


def article(conn: sqlite3.Connection, article_id: str) -> Article | None:
    row = conn.execute(f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id = ?", (article_id,)).fetchone()
    return None if row is None else _article(row)


def articles(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, Article]:
    out = {}
    for aid in dict.fromkeys(ids):
        a = article(conn, aid)
        if a is not None:
            out[aid] = a
    return out


def article_page(
    conn: sqlite3.Connection, offset: int, limit: int, contains: str | None = None
) -> tuple[list[Article], int]:
    """A page of articles newest first (undated last: NULL sorts lowest), then by title, and how
    many there are. O(offset + limit) by walking the date index; `contains` (a case-insensitive
    substring of the title or source) scans the articles' titles: O(articles)."""
    where, args = "", []
    if contains:
        where = "WHERE instr(lower(title), ?) > 0 OR instr(lower(coalesce(source, '')), ?) > 0"
        args = [contains.lower(), contains.lower()]
    rows = conn.execute(
        f"SELECT {_ARTICLE_COLUMNS} FROM articles {where} ORDER BY date DESC, title COLLATE NOCASE LIMIT ? OFFSET ?",
        [*args, limit, offset],
    ).fetchall()
    total = (
        counts(conn)[0] if not contains else conn.execute(f"SELECT count(*) FROM articles {where}", args).fetchone()[0]
    )
    return [_article(r) for r in rows], int(total)


def iter_articles(conn: sqlite3.Connection, batch: int = 500) -> Iterable[Article]:
    last = ""
    while True:
        rows = conn.execute(
            f"SELECT {_ARTICLE_COLUMNS} FROM articles WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
        ).fetchall()
        if not rows:
            return
        yield from (_article(r) for r in rows)
        last = rows[-1][0]


def passage_ids_of(conn: sqlite3.Connection, article_id: str) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM passages WHERE article_id = ?", (article_id,))]


def passages(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, Chunk]:
    """The passages with these ids that exist, with their text cut from their article.
    Offsets are bounds-checked: a passage whose span does not fit its article is corruption."""
    out: dict[int, Chunk] = {}
    texts: dict[str, str] = {}
    for pid in dict.fromkeys(ids):
        row = conn.execute('SELECT article_id, start, "end" FROM passages WHERE id = ?', (int(pid),)).fetchone()
        if row is None:
            continue
        aid, start, end = row
        if aid not in texts:
            a = conn.execute("SELECT text FROM articles WHERE id = ?", (aid,)).fetchone()
            if a is None:
                raise StoreError(f"passage {pid} belongs to a missing article {aid!r}")
            texts[aid] = a[0]
        if not 0 <= start < end <= len(texts[aid]):
            raise StoreError(
                f"passage {pid} spans {start}-{end}, outside its article {aid!r} ({len(texts[aid])} characters)"
            )
        out[int(pid)] = Chunk(int(pid), aid, start, end, texts[aid][start:end])
    return out


def vectors(conn: sqlite3.Connection, ids: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids that exist, their vectors)."""
    found, rows = [], []
    for pid in ids:
        row = conn.execute("SELECT v FROM vectors WHERE id = ?", (int(pid),)).fetchone()
        if row is not None:
            found.append(int(pid))
            rows.append(np.frombuffer(row[0], dtype=np.float32))
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    return np.array(found, np.int64), np.vstack(rows).reshape(len(rows), dim)


def iter_vectors(conn: sqlite3.Connection, dim: int, batch: int = 20_000) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """All (ids, vectors) in id order, a batch at a time (memory stays O(batch))."""
    last = -1
    while True:
        rows = conn.execute("SELECT id, v FROM vectors WHERE id > ? ORDER BY id LIMIT ?", (last, batch)).fetchall()
        if not rows:
            return
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        yield ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        last = int(ids[-1])


def changes_since(conn: sqlite3.Connection, seq: int, upto: int) -> tuple[list[int], list[int]]:
    """(passage ids removed, passage ids added) by changes seq < s <= upto, in order."""
    removed: list[int] = []
    added: list[int] = []
    for pid, op in conn.execute(
        "SELECT passage_id, op FROM changes WHERE seq > ? AND seq <= ? ORDER BY seq", (seq, upto)
    ):
        (added if op > 0 else removed).append(int(pid))
    return removed, added


def allowed_passages(
    conn: sqlite3.Connection, source: str | None, date_from: str | None, date_to: str | None, undated: bool = False
) -> np.ndarray:
    """Ids of passages whose article matches the filters (`undated`: articles without a date
    pass the date bounds); O(matching passages)."""
    where, args = _filter_sql(source, date_from, date_to, undated)
    rows = conn.execute(f"SELECT p.id FROM passages p JOIN articles a ON a.id = p.article_id WHERE {where}", args)
    return np.fromiter((r[0] for r in rows), np.int64)


def _filter_sql(
    source: str | None, date_from: str | None, date_to: str | None, undated: bool = False
) -> tuple[str, list]:
    clauses, args = ["1"], []
    if source:
        clauses.append("instr(lower(coalesce(a.source, '')), ?) > 0")
        args.append(source.lower())
    dates = []
    if date_from:
        dates.append("a.date >= ?")
        args.append(date_from)
    if date_to:
        dates.append("a.date <= ?")
        args.append(date_to)
    if dates:
        within = " AND ".join(dates)
        clauses.append(f"(a.date IS NULL OR ({within}))" if undated else within)
    return " AND ".join(clauses), args


def lexical_documents(
    conn: sqlite3.Connection, ids: Sequence[int] | None = None, batch: int = 5_000
) -> Iterable[list[tuple[int, str]]]:
    """(passage id, the article's title and the passage's text) of the given passages that exist
    (all, in id order, when ids is None), a batch at a time: what the lexical index holds. The
    title goes with every passage because a news story's later paragraphs rarely repeat the
    name the headline gives (news dev F1 70.9 -> 71.8, recall@5 87.2 -> 89.3). The text is cut
    from the article inside SQLite (substr counts characters, as Python's offsets do), so an
    article's text is not copied out once per passage."""
    sql = (
        'SELECT p.id, a.title || char(10) || substr(a.text, p.start + 1, p."end" - p.start) '
        "FROM passages p JOIN articles a ON a.id = p.article_id"
    )
    if ids is None:
        last = -1
        while True:
            rows = conn.execute(f"{sql} WHERE p.id > ? ORDER BY p.id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][0]
    wanted = list(dict.fromkeys(int(i) for i in ids))
    for i in range(0, len(wanted), batch):
        part = wanted[i : i + batch]
        rows = conn.execute(
            f"{sql} WHERE p.id IN (SELECT value FROM json_each(?)) ORDER BY p.id", (json.dumps(part),)
        ).fetchall()
        if rows:
            yield rows
