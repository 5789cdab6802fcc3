"""The lexical index: tantivy (BM25) over passage texts, keyed by stable passage ids.

Derived data, like the dense index: the passages in SQLite are the truth, and this folder is an
index of them that says which change (`seq`) it covers (lexical.json, written after each tantivy
commit). Only the process holding the store's LOCK writes it (tantivy allows one writer per
folder): after every committed SQLite write it replays the change log past its seq, deleting
each touched id and adding those that still exist. Ids are never reused, so replaying a change
twice (after a crash between the tantivy commit and lexical.json) changes nothing. A folder
that is missing, unreadable or ahead of the database is rebuilt from the passages.

Readers reload the newest tantivy commit before each search (~0.1 ms when nothing changed) and
read the hits through their question's SQLite snapshot, which drops passages the snapshot does
not hold. A new passage is found lexically once the writer's tantivy commit follows its SQLite
commit (a fraction of a second; dense search has it at once).

Costs, n = passages, m = passages changed: a write O(m) plus one tantivy commit (~0.15-0.2 s:
a new segment, fsync'ed; segments are merged in the background); a search O(postings of the
query's words), pruned by block-max WAND; a rebuild O(n) (~2,500 passages/s on 2 cores).
BM25's document frequencies count deleted passages until tantivy merges their segment away, as
in Lucene: scores drift slightly with the write history, the set of matching passages never.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Collection
from pathlib import Path

from qa.index import db
from qa.index.dense import fsync_path
from qa.index.lexical_backends import LexicalIndexError, TantivyLexical

log = logging.getLogger(__name__)

FOLDER = "lexical"
STATE = "lexical.json"
# What each tantivy document holds (db.lexical_documents); an index of other documents (made
# before titles were added) is rebuilt from the passages when opened.
DOCUMENTS = "title+passage"


class TextIndex:
    """One generation's tantivy index, open in this process (searched by any thread, written
    only by the thread holding the store's write lock)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / FOLDER
        self._index: TantivyLexical | None = None
        self._open_lock = threading.Lock()

    def _opened(self) -> TantivyLexical:
        if self._index is None:
            with self._open_lock:
                if self._index is None:
                    self._index = TantivyLexical(self.path)
        return self._index

    def covered_seq(self) -> int | None:
        """The last change the index holds, or None when it has never been written."""
        try:
            state = json.loads((self.folder / STATE).read_text())
            return int(state["seq"]) if state.get("documents") == DOCUMENTS else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def needs_catch_up(self, conn: sqlite3.Connection) -> bool:
        """Whether the index is behind the snapshot `conn` reads, or missing, or unreadable."""
        if self.covered_seq() != int(db.get_meta(conn, "seq")) or not self.path.is_dir():
            return True
        try:
            self._opened()
        except LexicalIndexError as exc:
            log.warning("lexical index %s is unreadable (%s)", self.path, exc)
            return True
        return False

    # ---- reads --------------------------------------------------------------------------------
    def search(self, query: str, k: int, allowed_ids: Collection[int] | None = None) -> list[tuple[int, float]]:
        """Top k (passage id, BM25 score) in the newest committed state."""
        if not self.path.is_dir():  # never written: a writer will build it (see catch_up)
            return []
        index = self._opened()
        index.index.reload()
        return index.search(query, k, allowed_ids)

    def count(self) -> int:
        """Passages in the newest commit."""
        index = self._opened()
        index.index.reload()
        return int(index.index.searcher().num_docs)

    # ---- writes (the caller holds the store's write lock) --------------------------------------
    def catch_up(self, conn: sqlite3.Connection) -> int:
        """Bring the index up to the snapshot `conn` reads (in a read transaction); returns the
        passages added or removed."""
        upto = int(db.get_meta(conn, "seq"))
        seq = self.covered_seq()
        if seq is None or seq > upto or not self.path.is_dir():
            return self.rebuild(conn)
        try:
            self._opened()
        except LexicalIndexError as exc:
            log.warning("lexical index %s is unusable (%s): rebuilding it from the passages", self.path, exc)
            return self.rebuild(conn)
        if seq == upto:
            return 0
        removed, added = db.changes_since(conn, seq, upto)
        try:
            index = self._opened()
            index.delete_ids([*removed, *added])  # an id added twice (a replay) is deleted first
            for rows in db.lexical_documents(conn, added):
                index.add(rows)
            index.commit()
        except (LexicalIndexError, ValueError, OSError) as exc:
            log.warning("lexical index %s is unusable (%s): rebuilding it from the passages", self.path, exc)
            return self.rebuild(conn)
        finally:
            self.release_writer()
        self._write_state(upto)
        return len(removed) + len(added)

    def rebuild(self, conn: sqlite3.Connection) -> int:
        """Index every passage of the snapshot `conn` reads, in a new folder swapped in whole."""
        upto = int(db.get_meta(conn, "seq"))
        tmp = self.folder / f".{FOLDER}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        fresh = TantivyLexical(tmp)
        n = 0
        for rows in db.lexical_documents(conn):
            fresh.add(rows)
            n += len(rows)
        fresh.commit()
        fresh.wait_merges()
        fresh.close()
        self.release_writer()
        self._index = None
        old = self.folder / f".{FOLDER}-old-{os.getpid()}"
        if self.path.exists():
            self.path.rename(old)
        tmp.rename(self.path)
        fsync_path(self.folder)
        shutil.rmtree(old, ignore_errors=True)
        self._write_state(upto)
        log.info("lexical index %s built: %d passages, seq %d", self.path, n, upto)
        return n

    def release_writer(self) -> None:
        """Drop tantivy's writer and with it the folder's writer lock (another process may write
        next, after it takes the store's LOCK)."""
        if self._index is not None:
            self._index.close()

    def _write_state(self, seq: int) -> None:
        tmp = self.folder / f".{STATE}.{os.getpid()}"
        with open(tmp, "w") as fh:
            fh.write(json.dumps({"seq": seq, "documents": DOCUMENTS}))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / STATE)
        fsync_path(self.folder)
