"""Read articles from text, Markdown, HTML and JSONL files; strip scraped-page boilerplate.

A file that cannot be read becomes a warning naming it; the rest is still ingested.
Article ids are stable and do not depend on how the text is cleaned: an id given in JSONL is
kept; otherwise the id is a hash of the article's URL when it is known (a page fetched again
replaces its older copy), else of the raw input (the file's bytes, or the text as given).
So the same article ingested twice is not duplicated, and a better cleaner does not change
the ids of articles already stored.

Beside a .txt, .md or .html file, an optional `NAME.meta.json` gives what the file cannot say
itself: `{"date": "yyyy-mm-dd", "source": ..., "url": ..., "title": ...}`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from qa.ingest.decoding import decode_text
from qa.ingest.errors import ArticleTooLargeError, IngestError  # noqa: F401 (re-exported: callers import them here)
from qa.ingest.pages import Page, parse_html, parse_markdown
from qa.types import Article

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES


SIDECAR_SUFFIX = ".meta.json"
ARTICLE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_TITLE_CHARS = 500
MAX_SOURCE_CHARS = 200
MAX_URL_CHARS = 2000


@dataclass
class IngestReport:
    articles: list[Article] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# Whole lines that scraped news pages carry and that are never article text. Matched against
# the full stripped line, case-insensitively, so a sentence that merely mentions them stays.
_BOILERPLATE = re.compile(
    r"^(?:"
    r"loading\s*[.…]*"
    r"|source link"
    r"|please enter your (?:comment|name here|email address here|name|email)\s*!?"
    r"|you have entered an incorrect email address!?"
    r"|leave a (?:reply|comment)|cancel reply|post comment|submit comment"
    r"|save my name,? email,? and website in this browser.*"
    r"|advertisement|advertising|sponsored content"
    r"|share(?: this(?: article| story)?)?:?|tweet|print|email"
    r"|(?:click|tap) (?:here )?to (?:share|print|email)\b.{0,60}"
    r"|read more|continue reading|related(?: articles| stories| posts)?:?"
    r"|(?:sign up|subscribe) (?:for|to) (?:our|the) newsletter.{0,40}"
    r"|follow us on .{0,40}"
    r"|all rights reserved\.?|(?:copyright|©)\s*(?:©\s*)?\d{4}.{0,80}"
    r"|skip to (?:main )?content"
    r")$",
    re.IGNORECASE,
)


def is_boilerplate(line: str) -> bool:
    return bool(_BOILERPLATE.match(line.strip()))


def clean_text(text: str) -> str:
    """Drop boilerplate lines, normalise line ends, squeeze blank runs, trim."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [line.rstrip() for line in text.split("\n") if not is_boilerplate(line)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def article_id_for(identity: str | bytes) -> str:
    """The id of an article without one: a hash of what identifies it (its URL, or its raw input)."""
    raw = identity.encode("utf-8") if isinstance(identity, str) else identity
    return "a" + hashlib.sha1(raw).hexdigest()[:15]


def normalise_date(value: object) -> str | None:
    """ISO yyyy-mm-dd from a date or timestamp string; None when there is no valid date."""
    if not value or not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip()[:10]).isoformat()
    except ValueError:
        return None


def _optional_text(value: object, field: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IngestError(f"{field} must be a string, got {type(value).__name__}")
    value = " ".join(value.split())
    if len(value) > limit:
        raise IngestError(f"{field} has {len(value):,} characters; the limit is {limit:,}")
    return value or None


def check_article_id(value: object) -> str:
    """An article id as given, or IngestError: a string (not a number or a boolean, which would be
    stored under another spelling) of 1-128 letters, digits or _.:-, and not a path segment."""
    if not isinstance(value, str):
        raise IngestError(f"article id must be a string, got {type(value).__name__}")
    value = value.strip()
    if not re.fullmatch(ARTICLE_ID_PATTERN, value) or value in (".", ".."):
        raise IngestError(f"article id {value!r} must be 1-128 letters, digits or _.:- (and not . or ..)")
    return value


def is_web_url(value: str) -> bool:
    """http(s) only: a javascript: or data: url stored with an article would be served as a link."""
    return value.lower().startswith(("http://", "https://"))


def _web_url(value: object) -> str | None:
    url = _optional_text(value, "url", MAX_URL_CHARS)
    if url is not None and not is_web_url(url):
        raise IngestError(f"url must start with http:// or https://, got {url[:40]!r}")
    return url


def _check_unicode(value: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from JSON "\ud800"
        raise IngestError(f"{field} is not valid Unicode text ({exc.reason})") from None


def make_article(
    text: object,
    title: object,
    *,
    id: object = None,
    date: object = None,
    source: object = None,
    url: object = None,
    max_chars: int = 2_000_000,
    raw: bytes | None = None,
) -> Article:
    """Clean and validate one article; raises IngestError with a reason a user can act on.
    `raw` is the input the article was read from (a file's bytes), for its id; default: `text`."""
    if not isinstance(text, str):
        raise IngestError(f"text must be a string, got {type(text).__name__}")
    for name, value in (("text", text), ("title", title), ("source", source), ("url", url), ("id", id)):
        if isinstance(value, str):
            _check_unicode(value, name)
    cleaned = clean_text(text)
    if not cleaned:
        raise IngestError("article has no text")
    if len(cleaned) > max_chars:
        raise ArticleTooLargeError(f"article has {len(cleaned):,} characters; the limit is {max_chars:,}")
    first_line = cleaned.split("\n", 1)[0]
    title = _optional_text(title, "title", MAX_TITLE_CHARS) or first_line[:120]
    if id is not None:
        id = check_article_id(id)
    iso = normalise_date(date)
    if date and iso is None:
        raise IngestError(f"date {date!r} is not an ISO date (yyyy-mm-dd)")
    url = _optional_text(url, "url", MAX_URL_CHARS)
    return Article(
        id=id or article_id_for(url or (raw if raw is not None else text)),
        title=title,
        text=cleaned,
        date=iso,
        source=_optional_text(source, "source", MAX_SOURCE_CHARS),
        url=_web_url(url),
    )


def parse_plain_text(text: str) -> tuple[str, str]:
    """First non-blank line is the title; the rest is the body."""
    lines = text.replace("\r\n", "\n").lstrip().split("\n", 1)
    return lines[0].strip(), (lines[1] if len(lines) > 1 else "")


def _read_jsonl(text: str, name: str, report: IngestReport, max_chars: int) -> None:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise IngestError("line is not a JSON object")
            body = record.get("text")
            if not isinstance(body, str):
                raise IngestError("missing string field 'text'")
            report.articles.append(
                make_article(
                    body,
                    record.get("title"),
                    id=record.get("id"),
                    date=record.get("date"),
                    source=record.get("source"),
                    url=record.get("url"),
                    max_chars=max_chars,
                )
            )
        except (json.JSONDecodeError, IngestError) as exc:
            report.warnings.append(f"{name}:{n}: skipped: {exc}")


def parse_bytes(
    raw: bytes,
    suffix: str,
    name: str,
    report: IngestReport,
    max_chars: int = 2_000_000,
    meta: dict[str, object] | None = None,
) -> None:
    """Append the articles in one file's bytes to the report; `suffix` picks the format.
    `meta` (title, date, source, url) fills in or corrects what the file says about itself.

    Raises IngestError for a file that is unreadable as a whole (binary, empty, in no known
    encoding); a bad line of a JSONL file becomes a warning naming the line.
    """
    suffix = suffix.lower()
    if suffix in JSONL_SUFFIXES:
        try:  # JSON is UTF-8 by definition (RFC 8259): no guessing
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise IngestError(f"JSONL file is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        _read_jsonl(text, name, report, max_chars)
        return
    text = decode_text(raw)
    if suffix in HTML_SUFFIXES:
        page = parse_html(text)
    elif suffix in MARKDOWN_SUFFIXES:
        page = parse_markdown(text)
    else:
        page = Page(*parse_plain_text(text))
    meta = meta or {}
    report.articles.append(
        make_article(
            page.body,
            meta.get("title") or page.title[:MAX_TITLE_CHARS],
            date=meta.get("date") or normalise_date(page.date),
            source=meta.get("source") or (page.source or "")[:MAX_SOURCE_CHARS],
            url=_scraped_url(meta.get("url") or page.url),
            max_chars=max_chars,
            raw=raw,
        )
    )


def _scraped_url(value: object) -> str | None:
    """A page's own url when it is an absolute http(s) url (else none: a relative or script url
    in a scraped page is no reason to refuse its text)."""
    url = " ".join(str(value or "").split())
    return url if is_web_url(url) and len(url) <= MAX_URL_CHARS else None


def read_sidecar(path: Path) -> dict[str, object]:
    """The `NAME.meta.json` beside an article file, or {} when there is none."""
    sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return {}
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(f"{sidecar.name} is not valid UTF-8 JSON ({exc})") from None
    unknown = set(meta) - {"title", "date", "source", "url"} if isinstance(meta, dict) else None
    if unknown is None or unknown:
        raise IngestError(
            f"{sidecar.name} must be a JSON object with title, date, source or url"
            + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
        )
    return meta


def read_file(path: Path, report: IngestReport, max_chars: int = 2_000_000) -> None:
    """Append the file's articles to the report, or a warning naming the file."""
    try:
        meta = read_sidecar(path) if path.suffix.lower() not in JSONL_SUFFIXES else {}
        parse_bytes(path.read_bytes(), path.suffix, str(path), report, max_chars, meta)
    except OSError as exc:
        report.warnings.append(f"{path}: cannot read: {exc.strerror or exc}")
    except IngestError as exc:
        report.warnings.append(f"{path}: skipped: {exc}")


def iter_files(paths: Iterable[str | Path]) -> list[Path]:
    """Supported files under the given paths, in a stable order."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES))
        else:
            files.append(p)
    return files


def ingest_paths(paths: Iterable[str | Path], max_chars: int = 2_000_000) -> IngestReport:
    """Articles from files and folders; later duplicates (same id) are dropped with a warning."""
    report = IngestReport()
    for path in iter_files(paths):
        if not path.exists():
            report.warnings.append(f"{path}: no such file or folder")
            continue
        read_file(path, report, max_chars)
    seen: set[str] = set()
    unique = []
    for article in report.articles:
        if article.id in seen:
            report.warnings.append(f"duplicate article {article.id} ({article.title!r}) skipped")
            continue
        seen.add(article.id)
        unique.append(article)
    report.articles = unique
    return report
