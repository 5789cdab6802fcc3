"""A text's content words: `tokenize` for the follow-up rule (qa/retrieval/followup.py), the
topic words of hybrid retrieval and the in-memory BM25 of training (qa/training/memory_bm25.py).
Unicode-aware (`Erdoğan` -> `erdogan`, `São Paulo` -> `sao paulo`), case- and accent-folded,
stopwords dropped. The persisted lexical index (tantivy, lexical_index.py) splits and folds its
query words in tantivy_engine.py, alike but not the same: its `fold` keeps case and
compatibility forms for tantivy's own lowercaser and stemmer."""

from __future__ import annotations

import re
import unicodedata

_TOKEN = re.compile(r"\w+")
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves s t""".split()
)


def fold(text: str) -> str:
    """Case- and accent-folded text (combining marks dropped: Erdoğan -> erdogan)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokenize(text: str) -> list[str]:
    """Content words: folded, split on non-word characters ("Obama's" -> obama, s), stopwords dropped."""
    return [t for t in _TOKEN.findall(fold(text)) if t not in STOPWORDS and t != "_"]
