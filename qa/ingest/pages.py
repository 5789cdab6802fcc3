"""HTML and Markdown -> title, body text and what the page says about itself (date, site, URL).

News pages go through trafilatura, a maintained extractor made for them: it keeps the story
and drops cookie banners, share bars, related-link lists and comment sections, and reads the
publication date from JSON-LD (`datePublished`), meta tags or the URL (htmldate). Markdown is
rendered to HTML (markdown-it-py) and read by the same block-aware text conversion that the
page path falls back to when trafilatura finds no main text (a page of a few lines): rendered
Markdown is all content, there is nothing to strip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from trafilatura.settings import Document

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Page:
    title: str
    body: str  # paragraphs separated by blank lines
    date: str | None = None  # yyyy-mm-dd as the page states it
    source: str | None = None
    url: str | None = None


class _BlockText(HTMLParser):
    """Visible text with block elements as paragraph breaks; the first <h1> is the title.
    Scripts, styles, navigation and forms are dropped."""

    SKIP = {
        "script",
        "style",
        "noscript",
        "template",
        "nav",
        "footer",
        "header",
        "aside",
        "form",
        "svg",
        "iframe",
        "button",
    }
    BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "tr",
        "blockquote",
        "pre",
        "figcaption",
        "main",
        "ul",
        "ol",
        "table",
        "thead",
        "tbody",
        "hr",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.in_h1 = False
        self.h1 = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip_depth += 1
        elif tag == "h1" and not self.h1:
            self.in_h1 = True
        if tag in self.BLOCK:
            self.parts.append("\n" if tag == "br" else "\n\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")  # cells of a row on one line

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skip_depth:
            self.skip_depth -= 1
        elif tag == "h1":
            self.in_h1 = False
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.in_h1:
            self.h1 += data
            return  # the headline is the title, not body text
        self.parts.append(data.replace("\n", " "))  # a line end in HTML source is a space; tags make the breaks


def _squeeze(text: str) -> str:
    """Spaces squeezed within lines; lines kept; runs of blank lines become one."""
    lines = [" ".join(line.split()) for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def block_text(html: str) -> tuple[str, str]:
    """(first <h1>, body text) of HTML, block elements as paragraph breaks."""
    parser = _BlockText()
    parser.feed(html)
    parser.close()
    return " ".join(parser.h1.split()), _squeeze("".join(parser.parts))


def parse_html(html: str) -> Page:
    """The story of a news page, with its title, publication date, site name and URL."""
    import trafilatura

    # A Document (None when nothing is found): its annotation adds the dict that only the
    # deprecated as_dict=True returns.
    doc = cast(
        "Document | None",
        trafilatura.bare_extraction(
            html,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            favor_precision=True,  # news pages: clutter out rather than every last line in
            date_extraction_params={"original_date": True, "extensive_search": False},
        ),
    )
    h1, fallback_body = block_text(html)
    title = " ".join(((doc.title if doc else None) or h1).split())
    body = (doc.text if doc else "") or ""
    if not body.strip():
        log.info("no main text found by the extractor; using the page's visible text")
        body = fallback_body
    lines = [line.strip() for line in body.split("\n")]
    if lines and title and lines[0] == title:
        lines = lines[1:]  # the headline repeated at the top of the text
    body = "\n\n".join(line for line in lines if line)
    if doc is None:
        return Page(title, body)
    return Page(title, body, doc.date, doc.sitename, doc.url)


def parse_markdown(markdown: str) -> Page:
    """Title from the first level-1 heading (else the first line); body as plain text."""
    from markdown_it import MarkdownIt

    title, body = block_text(MarkdownIt("commonmark").enable("table").render(markdown))
    if not title:
        first, _, rest = body.partition("\n")
        title, body = first.strip(), rest
    return Page(title, body.strip())
