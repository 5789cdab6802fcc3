"""Read articles from text, Markdown, HTML and JSONL files; strip scraped-page boilerplate.

A file that cannot be read becomes a warning naming it; the rest is still ingested.
Article ids are stable: an id given in JSONL is kept, otherwise the id is a hash of the
cleaned text, so the same article ingested twice gets the same id and is not duplicated.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable

from qa.errors import QAError
from qa.types import Article

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES


class IngestError(QAError, ValueError):
    """An article that cannot be ingested; the message says why."""


class ArticleTooLargeError(IngestError):
    """An article over the size limit (HTTP 413 rather than 422)."""


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


def article_id_for(text: str) -> str:
    return "a" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:15]


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
) -> Article:
    """Clean and validate one article; raises IngestError with a reason a user can act on."""
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
    return Article(
        id=id or article_id_for(cleaned),
        title=title,
        text=cleaned,
        date=iso,
        source=_optional_text(source, "source", MAX_SOURCE_CHARS),
        url=_web_url(url),
    )


def _decode(raw: bytes, name: str) -> str:
    if not raw.strip():
        raise IngestError("file is empty")
    if b"\x00" in raw[:8192]:
        raise IngestError("file is binary, not text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"file is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def parse_plain_text(text: str) -> tuple[str, str]:
    """First non-blank line is the title; the rest is the body."""
    lines = text.replace("\r\n", "\n").lstrip().split("\n", 1)
    return lines[0].strip(), (lines[1] if len(lines) > 1 else "")


_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_MD_QUOTE_BULLET = re.compile(r"^\s{0,3}(?:>\s?|[-*+]\s+)", re.MULTILINE)


def parse_markdown(text: str) -> tuple[str, str]:
    """Title from the first heading (or first line); body with the markup removed."""
    heading = re.search(r"^\s{0,3}#\s+(.+)$", text, re.MULTILINE)
    body = text
    if heading:
        title = heading.group(1).strip()
        body = text[: heading.start()] + text[heading.end() :]
    else:
        title, body = parse_plain_text(text)
    body = _MD_IMAGE.sub(r"\1", body)
    body = _MD_LINK.sub(r"\1", body)
    body = _MD_EMPHASIS.sub(r"\2", body)
    body = _MD_HEADING.sub("", body)
    body = _MD_QUOTE_BULLET.sub("", body)
    return _MD_EMPHASIS.sub(r"\2", _MD_LINK.sub(r"\1", title)), body


class _HTMLText(HTMLParser):
    """Visible text of a page, block elements as line breaks; scripts, styles, nav dropped."""

    SKIP = {"script", "style", "noscript", "template", "nav", "footer", "header", "aside", "form", "svg", "iframe", "button"}
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "tr", "blockquote", "pre", "figcaption", "main"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.in_title = False
        self.in_h1 = False
        self.title = ""
        self.h1 = ""
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            key = (a.get("property") or a.get("name") or "").lower()
            if key and a.get("content"):
                self.meta[key] = a["content"]
            return
        if tag == "link" and a.get("rel", "").lower() == "canonical" and a.get("href"):
            self.meta.setdefault("canonical", a["href"])
            return
        if tag in self.SKIP:
            self.skip_depth += 1
        elif tag == "title":
            self.in_title = True
        elif tag == "h1":
            self.in_h1 = True
        if tag in self.BLOCK:
            self.parts.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skip_depth:
            self.skip_depth -= 1
        elif tag == "title":
            self.in_title = False
        elif tag == "h1":
            self.in_h1 = False
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
            return
        if self.in_h1:
            self.h1 += data
            return  # the headline is the title, not body text (even inside <header>)
        if self.skip_depth:
            return
        self.parts.append(data)


def parse_html(text: str) -> tuple[str, str, dict[str, str]]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    body = "".join(parser.parts)
    body = "\n".join(" ".join(line.split()) for line in body.split("\n"))
    title = parser.meta.get("og:title") or parser.h1.strip() or parser.title.strip()
    return " ".join(title.split()), body, parser.meta


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


def parse_bytes(raw: bytes, suffix: str, name: str, report: IngestReport, max_chars: int = 2_000_000) -> None:
    """Append the articles in one file's bytes to the report; `suffix` picks the format.

    Raises IngestError for a file that is unreadable as a whole (binary, not UTF-8, empty);
    a bad line of a JSONL file becomes a warning naming the line.
    """
    suffix = suffix.lower()
    text = _decode(raw, name)
    if suffix in JSONL_SUFFIXES:
        _read_jsonl(text, name, report, max_chars)
        return
    meta: dict[str, str] = {}
    if suffix in HTML_SUFFIXES:
        title, body, meta = parse_html(text)
    elif suffix in MARKDOWN_SUFFIXES:
        title, body = parse_markdown(text)
    else:
        title, body = parse_plain_text(text)
    report.articles.append(
        make_article(
            body,
            title[:MAX_TITLE_CHARS],
            date=normalise_date(meta.get("article:published_time")),
            source=(meta.get("og:site_name") or "")[:MAX_SOURCE_CHARS],
            url=_page_url(meta),
            max_chars=max_chars,
        )
    )


def _page_url(meta: dict[str, str]) -> str | None:
    """A page's own url from its metadata, when it is an absolute http(s) url (else none:
    a relative or script url in a scraped page is no reason to refuse its text)."""
    url = " ".join((meta.get("og:url") or meta.get("canonical") or "").split())
    return url if is_web_url(url) and len(url) <= MAX_URL_CHARS else None


def read_file(path: Path, report: IngestReport, max_chars: int = 2_000_000) -> None:
    """Append the file's articles to the report, or a warning naming the file."""
    try:
        parse_bytes(path.read_bytes(), path.suffix, str(path), report, max_chars)
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
