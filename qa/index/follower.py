"""Keep a replica's copy of the index current: pull the published folder now, then again every few
seconds in a background thread, with one store kept from pull to pull (its FAISS index stays loaded,
so a delta costs O(changes), not a reload).

In:  the folder the writer publishes into (`qa replica publish`), the replica's own index folder.
Out: that index folder brought up to the publication by replication.pull (a whole copy swapped in,
     or deltas applied in place); every server on the folder follows it before its next question.

A failed pull in the background (nothing published, a file missing or damaged, the folder
unreachable, a sibling on the same folder holding its LOCK too long) is logged and tried again at
the next turn; the copy keeps serving the generation it had, its lag grows, and past
QA_REPLICA_MAX_LAG_S its server answers 503. Two followers on one folder (two replicas on one node)
take turns on the folder's LOCK, as every pull does.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from qa.errors import QAError
from qa.index import replication
from qa.index.dense import DenseSettings
from qa.index.replication import ReplicationError, TransferResult
from qa.index.store import IndexStore

log = logging.getLogger(__name__)


class Follower:
    """Pulls `source` into the replica folder `root` on demand (pull_once) or every `every_s`
    seconds in a background thread (start)."""

    def __init__(
        self,
        source: Path,
        root: Path,
        every_s: float = 1.0,
        name: str | None = None,
        dense_settings: DenseSettings | None = None,
    ) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be positive, got {every_s}")
        self.source, self.root, self.every_s, self.name = Path(source), Path(root), every_s, name
        self.dense_settings = dense_settings
        self._store: IndexStore | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: str | None = None

    def _refuse_a_writer(self) -> None:
        """Never pull over an index that is not a copy: a node-local path that happens to be the
        writer's own index (the same host, the same QA_INDEX_DIR) would lose its articles."""
        if (self.root / "CURRENT").is_file() and replication.replica_state(self.root) is None:
            raise ReplicationError(
                f"{self.root} holds an index that is not a pulled copy (a writer's?); a replica needs a "
                "folder of its own: set QA_INDEX_DIR to a node-local path such as /var/lib/newsqa/replica-{node}"
            )

    def pull_once(self, progress: bool = False) -> TransferResult:
        """One pull, with the store kept from the previous one. Raises ReplicationError (or another
        QAIndexError) when it fails; the copy is then as it was."""
        try:
            if self._store is None:
                store = replication.replica_store(self.source, self.root, self.dense_settings)
                self._refuse_a_writer()
                self._store = store
            return replication.pull(self.source, self.root, self.name, progress=progress, store=self._store)
        except (OSError, sqlite3.Error) as exc:
            raise ReplicationError(f"cannot pull {self.source} into {self.root}: {exc}") from exc

    def start(self) -> TransferResult:
        """The first pull, in the caller's thread (raises when it fails: there is nothing to serve
        yet), then the background pulls (once, however often start is called)."""
        done = self.pull_once()
        log.info(
            "replica %s is at seq %d (%s); pulling %s every %g s",
            self.root,
            done.seq,
            done.kind,
            self.source,
            self.every_s,
        )
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="qa-replica-pull", daemon=True)
            self._thread.start()
        return done

    def _loop(self) -> None:
        last = time.monotonic()  # the first pull was start()'s
        while not self._stop.wait(max(0.0, self.every_s - (time.monotonic() - last))):
            last = time.monotonic()
            try:
                done = self.pull_once()
            except QAError as exc:
                self._failed(exc)
                continue
            if self._last_error is not None:
                log.warning("replica %s pulls again: at seq %d", self.root, done.seq)
                self._last_error = None
            elif done.kind != "unchanged":
                log.info("replica %s: %s to seq %d in %.2f s", self.root, done.kind, done.seq, done.seconds)

    def _failed(self, exc: QAError) -> None:
        """Log a failed pull (once per distinct error: a missing folder would say it every second)."""
        if str(exc) != self._last_error:
            log.warning("replica %s: pull failed, the copy keeps serving what it had: %s", self.root, exc)
        self._last_error = str(exc)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the background pulls (a pull under way finishes first, up to timeout_s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
