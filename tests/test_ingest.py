import json
from pathlib import Path

import pytest

from qa.ingest.files import (
    IngestError,
    IngestReport,
    clean_text,
    ingest_paths,
    is_boilerplate,
    make_article,
    parse_bytes,
)
from qa.ingest.pages import parse_html, parse_markdown

SEED = Path(__file__).resolve().parent.parent / "seeds" / "articles" / "000_bdb2fb7eb406ee43.txt"
BOILERPLATE = ["Loading ....", "Source link", "Please enter your comment!", "Please enter your name here"]


def test_seed_article_loses_its_boilerplate_and_keeps_its_title():
    report = ingest_paths([SEED])
    assert report.warnings == []
    (article,) = report.articles
    assert article.title == "U.S.-Russia Talks Expose Deep Fissures, Despite Hopes for Better Ties"
    for line in BOILERPLATE:
        assert line not in article.text
    assert article.text.startswith("MOSCOW — Russia and the United States")
    assert article.text.endswith("nothing had been decided.")


def test_boilerplate_is_matched_as_whole_lines_only():
    assert is_boilerplate("  Loading .... ")
    assert is_boilerplate("Please enter your comment!")
    assert not is_boilerplate("Loading of the ships took place at dawn.")
    assert clean_text("Intro.\nSource link\nThe source link was broken, he said.") == (
        "Intro.\nThe source link was broken, he said."
    )


def test_ids_are_stable_so_reingesting_does_not_duplicate(tmp_path):
    (tmp_path / "a.txt").write_text("Title\n\nBody text here.")
    (tmp_path / "copy.txt").write_text("Title\n\nBody text here.")
    report = ingest_paths([tmp_path])
    assert len(report.articles) == 1
    assert any("duplicate" in w for w in report.warnings)
    assert ingest_paths([tmp_path / "a.txt"]).articles[0].id == report.articles[0].id


def test_bad_files_warn_by_name_and_the_rest_is_ingested(tmp_path):
    (tmp_path / "good.txt").write_text("Good title\nGood body.")
    (tmp_path / "empty.txt").write_text("   \n")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\x00\x00\x01")
    (tmp_path / "latin1.jsonl").write_bytes('{"text": "Caf\xe9"}'.encode("latin-1"))
    report = ingest_paths([tmp_path])
    assert [a.title for a in report.articles] == ["Good title"]
    joined = "\n".join(report.warnings)
    for name, reason in [("empty.txt", "empty"), ("binary.txt", "binary"), ("latin1.jsonl", "UTF-8")]:
        assert name in joined and reason in joined


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "cp1251"])
def test_text_files_in_legacy_encodings_are_decoded(tmp_path, encoding):
    title = "Мост открыт" if encoding == "cp1251" else "Café reopens"
    body = (
        "Владельцы кафе сказали, что торговля упала на треть, пока мост был закрыт."
        if encoding == "cp1251"
        else "The owners said trade fell by a third while the bridge was shut, and the repair cost £48 million."
    )
    (tmp_path / "old.txt").write_bytes(f"{title}\n\n{body}".encode(encoding))
    report = ingest_paths([tmp_path])
    assert report.warnings == []
    (article,) = report.articles
    assert (article.title, article.text) == (title, body)


def test_jsonl_keeps_metadata_and_reports_bad_lines(tmp_path):
    lines = [
        json.dumps(
            {
                "id": "x1",
                "title": "T1",
                "text": "One.",
                "date": "2020-01-02T10:00:00Z",
                "source": "Wire",
                "url": "http://e/1",
            }
        ),
        "{not json",
        json.dumps({"id": "x2", "title": "T2"}),
        json.dumps({"id": "x3", "title": "T3", "text": "Three.", "date": "yesterday"}),
    ]
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines))
    report = ingest_paths([path])
    (a,) = report.articles
    assert (a.id, a.title, a.date, a.source, a.url) == ("x1", "T1", "2020-01-02", "Wire", "http://e/1")
    assert [w.split(": ")[0] for w in report.warnings] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_html_drops_scripts_and_navigation_and_reads_meta():
    html = """<!doctype html><html><head><title>Site | Headline</title>
    <meta property="og:title" content="Headline">
    <meta property="article:published_time" content="2021-03-04T05:06:07Z">
    <meta property="og:site_name" content="Daily">
    <script>var x = "<p>not text</p>";</script><style>p{}</style></head>
    <body><nav>Home | World</nav><h1>Headline</h1><p>First &amp; real paragraph.</p>
    <p>Second <b>bold</b> one.</p><footer>Copyright</footer></body></html>"""
    page = parse_html(html)
    assert page.title == "Headline"
    assert "First & real paragraph." in page.body and "Second bold one." in page.body
    assert "not text" not in page.body and "Home" not in page.body and "Copyright" not in page.body
    assert (page.date, page.source) == ("2021-03-04", "Daily")


def test_markdown_is_rendered_then_read_as_html():
    page = parse_markdown(
        "# The **Big** News\n\nSee [the report](http://x) and *this*.\n\n## Part\n\n- item one\n- item `two`\n\n"
        "> A quote with **bold**.\n\n| Team | Score |\n|---|---|\n| Hawks | 3 |\n"
    )
    assert page.title == "The Big News"
    assert page.body.split("\n\n") == [
        "See the report and this.",
        "Part",
        "item one",
        "item two",
        "A quote with bold.",
        "Team Score",
        "Hawks 3",
    ]
    assert "http" not in page.body and "#" not in page.body and "*" not in page.body and "`" not in page.body
    untitled = parse_markdown("Ceasefire holds\n\nThe truce held for a **second** day.")
    assert (untitled.title, untitled.body) == ("Ceasefire holds", "The truce held for a second day.")


NEWS_PAGE = Path(__file__).resolve().parent / "data" / "news_page_cp1252.html"


def test_a_saved_news_page_keeps_the_story_and_loses_its_clutter():
    """A windows-1252 page as scraped: cookie banner, share bars, related links, newsletter box,
    comments, footer; its date only in JSON-LD."""
    report = IngestReport()
    parse_bytes(NEWS_PAGE.read_bytes(), ".html", "page", report)
    (article,) = report.articles
    assert article.title == "Harbour bridge reopens after two-year repair"
    assert article.date == "2023-03-14"  # datePublished, not dateModified
    assert article.source == "The Coastal Courier"
    assert article.url == "https://www.coastalcourier.example/news/2023/03/harbour-bridge-reopens"
    paragraphs = article.text.split("\n\n")
    assert paragraphs[0].startswith("The Harbour Bridge in Porthaven reopened")
    assert paragraphs[-1].startswith("The bridge will carry a weight limit of 18 tonnes")
    assert len(paragraphs) == 5
    # windows-1252 bytes decoded: pound signs, curly quotes, accents
    assert "£48 million" in article.text and "“the end of a long, expensive chapter”" in article.text
    assert "Tomás Reilly, who runs the Anchor Café" in article.text
    for clutter in [
        "cookies",
        "Accept all",
        "Share this article",
        "WhatsApp",
        "Related",
        "Ferry fares frozen",
        "Council budget gap",
        "Comments",
        "About time",
        "ferry crew deserve",
        "newsletter",
        "All rights reserved",
        "Privacy policy",
        "Subscribe",
    ]:
        assert clutter not in article.text, clutter


def test_a_page_without_its_charset_declared_is_still_read_as_windows_1252():
    raw = NEWS_PAGE.read_bytes().replace(
        b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">', b""
    )
    report = IngestReport()
    parse_bytes(raw, ".html", "page", report)
    assert "£48 million" in report.articles[0].text and "Café" in report.articles[0].text


def test_ids_come_from_the_url_or_the_raw_input_not_from_the_cleaner(tmp_path):
    # The same page fetched twice with different clutter is one article (same URL).
    page = NEWS_PAGE.read_bytes()
    again = page.replace(b"Dai</p>", b"Dai</p><p>A fourth comment.</p>")
    ids = set()
    for raw in (page, again):
        report = IngestReport()
        parse_bytes(raw, ".html", "page", report)
        ids.add(report.articles[0].id)
    assert len(ids) == 1
    # Without a URL, the id hashes the raw input: what the cleaner removes still counts, so a
    # change of cleaner cannot change it; the bundled report keeps the id its gold set names.
    assert make_article("Loading ....\nText.", "t").id != make_article("Text.", "t").id
    (seed,) = ingest_paths([SEED]).articles
    assert seed.id == "a839dbc76190a423"
    assert make_article("Text.", "t", id="given-1").id == "given-1"


def test_a_sidecar_gives_a_text_file_its_date(tmp_path):
    (tmp_path / "story.txt").write_text("Title\n\nBody text here.")
    before = ingest_paths([tmp_path]).articles[0]
    (tmp_path / "story.meta.json").write_text('{"date": "2019-05-14", "source": "Wire"}')
    after = ingest_paths([tmp_path]).articles[0]
    assert (after.date, after.source, after.id) == ("2019-05-14", "Wire", before.id)
    (tmp_path / "story.meta.json").write_text('{"published": "2019-05-14"}')
    report = ingest_paths([tmp_path])
    assert report.articles == [] and "unknown: published" in report.warnings[0]
    (tmp_path / "story.meta.json").write_text('{"date": "14 May"}')
    assert "not an ISO date" in ingest_paths([tmp_path]).warnings[0]


def test_make_article_rejects_what_cannot_be_stored():
    with pytest.raises(IngestError, match="no text"):
        make_article("Loading ....\n\n", "t")
    with pytest.raises(IngestError, match="limit"):
        make_article("x" * 2000, "t", max_chars=1000)
    with pytest.raises(IngestError, match="id"):
        make_article("text", "t", id="bad id/with slash")
    with pytest.raises(IngestError, match="date"):
        make_article("text", "t", date="not a date")


def test_fields_of_the_wrong_type_or_broken_unicode_are_refused_not_stored():
    with pytest.raises(IngestError, match="source must be a string"):
        make_article("text", "t", source=5)
    with pytest.raises(IngestError, match="url must be a string"):
        make_article("text", "t", url=[1])
    with pytest.raises(IngestError, match="text must be a string"):
        make_article(None, "t")
    with pytest.raises(IngestError, match="not valid Unicode"):
        make_article("bad \ud800 text", "t")
    with pytest.raises(IngestError, match="title has"):
        make_article("text", "x" * 600)


def test_jsonl_with_broken_lines_keeps_the_good_ones(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"id": "a", "text": "bad \\ud800"}\n{"id": "b", "text": "ok", "source": 5}\n{"id": "c", "text": "fine"}\n'
    )
    report = ingest_paths([path])
    assert [a.id for a in report.articles] == ["c"]
    assert len(report.warnings) == 2 and all(str(path) in w for w in report.warnings)


@pytest.mark.parametrize("bad_id", [True, 42, 1.5, ".", "..", " .. "])
def test_ids_must_be_strings_and_not_path_segments(bad_id):
    with pytest.raises(IngestError, match="article id"):
        make_article("text", "t", id=bad_id)
    assert make_article("text", "t", id=" a.b:c-1 ").id == "a.b:c-1"


def test_jsonl_ids_are_never_stored_under_another_spelling(tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text(
        '{"id": true, "text": "one"}\n{"id": 7, "text": "two"}\n'
        '{"id": "..", "text": "three"}\n{"id": "ok", "text": "four"}\n'
    )
    report = ingest_paths([path])
    assert [a.id for a in report.articles] == ["ok"]
    assert [w.split(": skipped: ")[0] for w in report.warnings] == [f"{path}:1", f"{path}:2", f"{path}:3"]
    assert "must be a string, got bool" in report.warnings[0]


def test_only_http_urls_are_stored():
    for url in [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<b>x</b>",
        "ftp://example.com/a",
        "/relative",
    ]:
        with pytest.raises(IngestError, match="url must start with http"):
            make_article("text", "t", url=url)
    assert make_article("text", "t", url="HTTPS://example.com/a").url == "HTTPS://example.com/a"
    # A scraped page with a script url is still read; its url is dropped, not stored.
    page = (
        b'<html><head><meta property="og:url" content="javascript:alert(1)"><title>T</title></head>'
        b"<body><p>Body text of the page.</p></body></html>"
    )
    report = IngestReport()
    parse_bytes(page, ".html", "page.html", report)
    assert report.articles[0].url is None and "Body text" in report.articles[0].text
