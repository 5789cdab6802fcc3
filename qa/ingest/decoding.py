"""Bytes of an article file -> text: UTF-8 first, else the encoding the bytes show.

Scraped news is often windows-1252 (curly quotes at 0x93/0x94, "£" at 0xA3). charset-normalizer
finds the family; where cp1252 decodes the bytes as cleanly as its best guess (often the
Central-European twin cp1250: the same letters for most Western text, but "£" becomes "Ł"),
cp1252 is taken, as the far more common one in news.
"""

from __future__ import annotations

from charset_normalizer import from_bytes

from qa.ingest.errors import IngestError

PREFERRED_AMONG_TIES = "cp1252"


def decode_text(raw: bytes) -> str:
    """The text of a file's bytes; IngestError when it is empty, binary or in no known encoding."""
    if not raw.strip():
        raise IngestError("file is empty")
    if b"\x00" in raw[:8192]:
        raise IngestError("file is binary, not text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = f"{exc.reason} at byte {exc.start}"
    matches = list(from_bytes(raw))
    if not matches:
        raise IngestError(f"file is not UTF-8 ({utf8_error}) and its encoding could not be detected")
    best = matches[0]
    # Coherence (language fit) cannot settle it: "Ł48" can fit a language model better than "£48".
    tied = [m for m in matches if m.chaos <= best.chaos]
    if any(PREFERRED_AMONG_TIES in m.could_be_from_charset for m in tied):
        return raw.decode(PREFERRED_AMONG_TIES, errors="replace")
    return str(best)
