"""The SQLite FTS5 lexical index that tantivy was measured against (bench.lexical_choice,
docs/lexical-choice.md): bench-only, kept out of the package."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Collection, Sequence

from qa.index.tantivy_engine import query_terms


class Fts5Lexical:
    """A contentless FTS5 table (rowid = passage id) in the caller's SQLite connection.

    The table stores only the inverted index, not the text (the passage store has it), so a
    delete must hand back the exact text that was added: FTS5 removes the tokens it is given,
    and a different text would leave stale postings behind (SQLite 3.40 has no
    contentless_delete). Writes join the connection's open transaction: `commit()` commits the
    connection, so a caller that owns the transaction (the article store writing passages and
    their index entries atomically) commits itself and need not call it. Uncommitted writes are
    visible to searches on the same connection.
    Tokens: unicode61 (Unicode letters/digits, casefolded, diacritics removed), Porter-stemmed.
    """

    def __init__(self, conn: sqlite3.Connection, table: str = "passage_fts") -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            raise ValueError(f"not a plain SQL table name: {table!r}")
        self.conn = conn
        self.table = table
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
            "text, content='', tokenize='porter unicode61 remove_diacritics 2')"
        )

    def add(self, rows: Sequence[tuple[int, str]]) -> None:
        self.conn.executemany(f"INSERT INTO {self.table}(rowid, text) VALUES (?, ?)", rows)

    def delete(self, rows: Sequence[tuple[int, str]]) -> None:
        self.conn.executemany(f"INSERT INTO {self.table}({self.table}, rowid, text) VALUES ('delete', ?, ?)", rows)

    def commit(self) -> None:
        self.conn.commit()

    def optimize(self) -> None:
        """Merge all of the index's b-trees into one (after a bulk load; queries get faster)."""
        self.conn.execute(f"INSERT INTO {self.table}({self.table}) VALUES ('optimize')")

    def match_expression(self, query: str) -> str | None:
        """The FTS5 MATCH string: each word a quoted string, OR-ed; None when no word is left."""
        terms = query_terms(query)
        return " OR ".join(f'"{t}"' for t in terms) if terms else None  # words hold no quotes

    def search(self, query: str, k: int, allowed_ids: Collection[int] | None = None) -> list[tuple[int, float]]:
        expr = self.match_expression(query)
        if expr is None or k <= 0 or (allowed_ids is not None and len(allowed_ids) == 0):
            return []
        # bm25() is lower-is-better; negated so that scores are positive and higher is better.
        sql = f"SELECT rowid, -bm25({self.table}) FROM {self.table} WHERE {self.table} MATCH ?"
        params: list[object] = [expr]
        if allowed_ids is not None:
            # `+rowid`: without the `+` SQLite drives the MATCH by the id list, one FTS5 lookup
            # per id (seconds at 200k passages). With it the MATCH runs once, rows not allowed
            # are dropped by a lookup in the list, and bm25() is only computed for the rest.
            sql += " AND +rowid IN (SELECT value FROM json_each(?))"
            params.append(json.dumps([int(i) for i in allowed_ids]))
        sql += f" ORDER BY bm25({self.table}), rowid LIMIT ?"
        params.append(int(k))
        return [(int(r), float(s)) for r, s in self.conn.execute(sql, params)]
