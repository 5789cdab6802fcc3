"""The persisted, incremental lexical index's engine: tantivy behind the `LexicalIndex`
interface (the SQLite FTS5 one it was measured against lives in bench/fts5_lexical.py,
docs/lexical-choice.md).

Both rank by BM25 over Unicode-aware, diacritic-folded, stemmed tokens, so `Erdoğan` matches
`Erdogan`, `São Paulo` matches `Sao Paulo` and `expire` matches `expires`. A query is split in
Python (`query_terms`) into words, stopwords are dropped, and the words are OR-ed as literal
terms: nothing a user types is ever read as query syntax (FTS5's AND/NEAR/*/quotes, tantivy's
field:value), so no query raises. Passages are keyed by the caller's integer passage id.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from qa.index.words import STOPWORDS

if TYPE_CHECKING:
    import tantivy

# Words: letters and digits of any script; "_" separates, as in both engines' tokenizers.
_WORD = re.compile(r"[^\W_]+")
# The Combining Diacritical Marks block: what is left of é, ğ, ã after NFKD. Only this block,
# so marks that carry meaning in other scripts (Indic vowel signs) stay.
_DIACRITICS = re.compile("[\u0300-\u036f]")


class LexicalIndexError(RuntimeError):
    """A lexical index that cannot be opened or written (another schema, corrupt, locked by a writer)."""


class LexicalIndexDamaged(LexicalIndexError):
    """A file of the index is shorter than tantivy wrote it: reading it through tantivy's memory
    map would kill the process with SIGBUS, so the index is not read until it is rebuilt."""


class LexicalIndex(Protocol):
    def add(self, rows: Sequence[tuple[int, str]]) -> None:
        """Index (passage_id, text) rows. An id must not be present already: delete it first."""

    def delete(self, rows: Sequence[tuple[int, str]]) -> None:
        """Remove (passage_id, text) rows; the text must be the one that was added."""

    def search(self, query: str, k: int, allowed_ids: Collection[int] | None = None) -> list[tuple[int, float]]:
        """Best k (passage_id, score), best first, scores positive; only `allowed_ids` when given."""

    def commit(self) -> None:
        """Make the writes durable (and, for tantivy, visible to search)."""


def fold(text: str) -> str:
    """Strip Latin/Greek/Cyrillic diacritics (ğ -> g, İ -> I) and compatibility forms (ﬁ -> fi)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", _DIACRITICS.sub("", unicodedata.normalize("NFKD", text)))


def query_terms(query: str) -> list[str]:
    """The query's distinct words, folded and casefolded, stopwords dropped, in order."""
    words = _WORD.findall(fold(query).casefold())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS))


class TantivyLexical:
    """A tantivy index in its own folder: BM25 over a term-frequency-only text field, the
    passage id as an indexed i64 field (delete by term) and a fast field (hits' ids without
    touching stored documents; nothing is stored).

    Analyzer: tantivy's simple tokenizer (Unicode alphanumeric runs), words over 40 bytes
    dropped, lowercase, our stopwords, ASCII folding (also ø -> o, ł -> l, which have no
    decomposition), English Snowball stemmer; document text is `fold`ed first, as queries are.
    Writes are buffered by one writer (one per folder, across processes: tantivy's lock) and
    become durable and visible to search at `commit()`. Segments are merged in the background.
    """

    FIELD_ID = "pid"
    FIELD_TEXT = "text"
    TOKENIZER = "qa_en"
    # Filtered search (see `search`; figures at 1M passages, 2 cores: docs/lexical-choice.md).
    overfetch = 4  # fetch enough to expect 4 x k allowed hits
    max_fetch = 4000  # and filter after the search only when that is at most this many
    fetch_per_allowed_id = 10  # and at most this many per allowed id (one id in the query ~ 10 hits)

    def __init__(self, path: str | Path, heap_bytes: int = 128_000_000, threads: int = 1) -> None:
        import tantivy

        self._tantivy = tantivy
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._heap_bytes, self._threads = heap_bytes, threads
        builder = tantivy.SchemaBuilder()
        # i64, not u64: tantivy-py turns a Python int into an i64 term, so delete-by-term on a
        # u64 field silently deletes nothing.
        builder.add_integer_field(self.FIELD_ID, stored=False, indexed=True, fast=True)
        builder.add_text_field(self.FIELD_TEXT, stored=False, tokenizer_name=self.TOKENIZER, index_option="freq")
        self.schema = builder.build()
        try:
            self.index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        except ValueError as exc:
            raise LexicalIndexError(f"cannot open the tantivy index at {self.path}: {exc}") from exc
        # Tokenizers are not persisted with the index: register ours at every open.
        self.analyzer = (
            tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.custom_stopword(sorted(STOPWORDS)))
            .filter(tantivy.Filter.ascii_fold())
            .filter(tantivy.Filter.stemmer("english"))
            .build()
        )
        self.index.register_tokenizer(self.TOKENIZER, self.analyzer)
        self._writer: tantivy.IndexWriter | None = None

    @property
    def writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            try:
                writer = self.index.writer(heap_size=self._heap_bytes, num_threads=self._threads)
                # A writer killed mid-commit leaves files no commit refers to; the next writer
                # would collide with them (FileAlreadyExists on a .del file): remove them first.
                writer.garbage_collect_files()
                self._writer = writer
            except ValueError as exc:
                raise LexicalIndexError(f"the tantivy index at {self.path} is locked by another writer: {exc}") from exc
        return self._writer

    def add(self, rows: Sequence[tuple[int, str]]) -> None:
        writer = self.writer
        for passage_id, text in rows:
            doc = self._tantivy.Document()
            doc.add_integer(self.FIELD_ID, int(passage_id))
            doc.add_text(self.FIELD_TEXT, fold(text))
            writer.add_document(doc)

    def delete(self, rows: Sequence[tuple[int, str]]) -> None:
        self.delete_ids([passage_id for passage_id, _ in rows])

    def delete_ids(self, ids: Iterable[int]) -> None:
        """Remove passages by id alone (the text is not needed; a missing id is a no-op)."""
        writer = self.writer
        for passage_id in ids:
            writer.delete_documents_by_term(self.FIELD_ID, int(passage_id))

    def commit(self) -> None:
        if self._writer is not None:
            self._writer.commit()
        self.index.reload()

    def wait_merges(self) -> None:
        """Finish background segment merges (after a bulk load); releases the writer."""
        if self._writer is not None:
            self._writer.wait_merging_threads()
            self._writer = None
            self.index.reload()

    def close(self) -> None:
        """Drop the writer (uncommitted writes are lost) and with it the folder's writer lock."""
        self._writer = None

    def query(self, query: str) -> tantivy.Query | None:
        """The tantivy query: a should-clause per distinct analyzed word; None when none is left."""
        tantivy = self._tantivy
        tokens = dict.fromkeys(tok for term in query_terms(query) for tok in self.analyzer.analyze(term))
        if not tokens:
            return None
        return tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, tantivy.Query.term_query(self.schema, self.FIELD_TEXT, t, index_option="freq"))
                for t in tokens
            ]
        )

    def search(self, query: str, k: int, allowed_ids: Collection[int] | None = None) -> list[tuple[int, float]]:
        q = self.query(query)
        if q is None or k <= 0 or (allowed_ids is not None and len(allowed_ids) == 0):
            return []
        searcher = self.index.searcher()
        if allowed_ids is None:
            return self._top(searcher, q, k)
        allowed = allowed_ids if isinstance(allowed_ids, (set, frozenset)) else {int(i) for i in allowed_ids}
        # A filter is applied after the search when that is cheaper than putting the ids in the
        # query (a term per id: ~30 us each, 1,000 ids ~30 ms at 1M passages, while the top 4,000
        # with their ids take ~12 ms): the unfiltered top `fetch` should hold `overfetch` x k
        # allowed passages if they are spread evenly. Exact either way: k allowed among the top
        # `fetch` are the k best allowed, and a search that found fewer is redone with the ids.
        total = searcher.num_docs
        fetch = min(total, -(-self.overfetch * k * total // len(allowed)))
        if fetch <= min(self.max_fetch, self.fetch_per_allowed_id * len(allowed)):
            hits = self._top(searcher, q, fetch)
            kept = [h for h in hits if h[0] in allowed][:k]
            if len(kept) == k or fetch == total:
                return kept
        tantivy = self._tantivy
        ids = tantivy.Query.term_set_query(self.schema, self.FIELD_ID, sorted(allowed))
        # The id filter scores 0, so that scores stay BM25's.
        q = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, q), (tantivy.Occur.Must, tantivy.Query.const_score_query(ids, 0.0))]
        )
        return self._top(searcher, q, k)

    def _top(self, searcher: tantivy.Searcher, q: tantivy.Query, k: int) -> list[tuple[int, float]]:
        # count=False: counting every match would switch off block-max WAND's top-k pruning.
        hits = searcher.search(q, int(k), count=False).hits
        ids = searcher.fast_field_values(self.FIELD_ID, [address for _, address in hits])
        # Equal scores: lower passage id first, as FTS5 and the in-memory BM25 do.
        # The id field is an i64 fast field, so every value is an int (the stub allows any number).
        found = [(int(i), float(s)) for (s, _), i in zip(hits, ids, strict=True) if isinstance(i, int)]
        return sorted(found, key=lambda h: (-h[1], h[0]))
