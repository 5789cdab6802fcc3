"""The lexical index: tantivy (BM25) over passage texts, keyed by stable passage ids.

Derived data, like the dense index: the passages in SQLite are the truth, and this folder is an
index of them that says which change (`seq`) it covers (lexical.json, written after each tantivy
commit). Only the process holding the store's LOCK writes it (tantivy allows one writer per
folder): after every committed SQLite write it replays the change log past its seq, deleting
each touched id and adding those that still exist. Ids are never reused, so replaying a change
twice (after a crash between the tantivy commit and lexical.json) changes nothing. A folder
that is missing, unreadable or ahead of the database is rebuilt from the passages.

tantivy reads its files through memory maps (tantivy-py offers no other directory for an index
on disk), and a mapped file cut short under a running process kills it with SIGBUS at the next
read of the lost pages: no Python code can catch that. So before each search (and at open) the
files of the segments the newest commit names are checked, ~0.2 ms: each must be as long as
when it was last checked and end with tantivy's footer. A damaged index is not read again:
questions are answered from the dense index alone while a writer rebuilds it from the passages.
What this cannot prevent is a file cut short during the few milliseconds of a search itself.

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
from qa.index.tantivy_engine import LexicalIndexDamaged, LexicalIndexError, TantivyLexical

log = logging.getLogger(__name__)

FOLDER = "lexical"
STATE = "lexical.json"
# What each tantivy document holds (db.lexical_documents); an index of other documents (made
# before titles were added) is rebuilt from the passages when opened.
DOCUMENTS = "title+passage"
FOOTER_MAGIC = (1337).to_bytes(4, "little")  # the last 4 bytes of every file tantivy writes


def _segment_files(path: Path) -> set[str]:
    """Names of the files of the newest commit's segments (a segment's files are named by its
    id; its deletes by id and opstamp). Files being written (a merge) are not among them yet."""
    meta = json.loads((path / "meta.json").read_text())
    names: set[str] = set()
    for segment in meta["segments"]:
        sid = segment["segment_id"].replace("-", "")
        names.update(f"{sid}.{ext}" for ext in ("idx", "pos", "term", "store", "fast", "fieldnorm"))
        if segment.get("deletes"):
            names.add(f"{sid}.{segment['deletes']['opstamp']}.del")
    return names


def _ends_with_footer(path: str, size: int) -> bool:
    if size < len(FOOTER_MAGIC):
        return False
    with open(path, "rb") as fh:
        fh.seek(size - len(FOOTER_MAGIC))
        return fh.read(len(FOOTER_MAGIC)) == FOOTER_MAGIC


class TextIndex:
    """One generation's tantivy index, open in this process (searched by any thread, written
    only by the thread holding the store's write lock)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / FOLDER
        self._index: TantivyLexical | None = None
        self._open_lock = threading.Lock()
        self._checked: dict[str, int] = {}  # segment file -> its size when found whole
        self._damaged: list[TantivyLexical] = []  # never freed (see check_files); one per damage found
        self.damaged = False  # a file was found cut short: not read until rebuilt

    def check_files(self) -> None:
        """Raise LexicalIndexDamaged (and stop reading the index) when a file of the newest
        commit is shorter than when last checked or lacks tantivy's footer."""
        if self.damaged:
            raise LexicalIndexDamaged(f"the lexical index {self.path} is damaged and waits for its rebuild")
        try:
            sizes = self._whole_files()
        except FileNotFoundError:  # no commit yet, or a commit replaced the segments meanwhile
            self._checked.clear()
            return
        except (OSError, ValueError, KeyError, TypeError, LexicalIndexDamaged) as exc:
            # The damaged index is kept referenced, never dropped: tantivy may touch its maps
            # when it is freed, and a question still reading it must not lose them.
            if self._index is not None:
                self._damaged.append(self._index)
            self._index = None
            self._checked.clear()
            self.damaged = True
            log.error("lexical index %s is damaged (%s): searching the dense index alone until rebuilt", self.path, exc)
            raise LexicalIndexDamaged(str(exc)) from exc
        self._checked = sizes

    def _whole_files(self) -> dict[str, int]:
        """Size of each file of the newest commit, each checked whole (its footer read only
        when its size is new)."""
        wanted = _segment_files(self.path)
        with os.scandir(self.path) as entries:
            sizes = {e.name: e.stat().st_size for e in entries if e.name in wanted}
        for name, size in sizes.items():
            if self._checked.get(name) != size and not _ends_with_footer(str(self.path / name), size):
                raise LexicalIndexDamaged(f"{self.path / name} is cut short ({size} bytes)")
        return sizes

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
            self.check_files()
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
        self.check_files()  # before reload(): opening a new segment reads its files too
        index = self._opened()
        index.index.reload()
        return index.search(query, k, allowed_ids)

    def count(self) -> int:
        """Passages in the newest commit."""
        self.check_files()
        index = self._opened()
        index.index.reload()
        return int(index.index.searcher().num_docs)

    # ---- writes (the caller holds the store's write lock) --------------------------------------
    def catch_up(self, conn: sqlite3.Connection) -> int:
        """Bring the index up to the snapshot `conn` reads (in a read transaction); returns the
        passages added or removed."""
        upto = int(db.get_meta(conn, "seq"))
        seq = self.covered_seq()
        if seq is None or seq > upto or seq < db.log_floor(conn) or not self.path.is_dir():
            return self.rebuild(conn)  # (behind the pruned log: only a copy pulled without its log)
        try:
            self.check_files()
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
        self._checked.clear()
        self.damaged = False  # searched again only now that the new folder is in place
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
