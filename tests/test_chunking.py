from itertools import pairwise

import pytest

from qa.ingest.chunking import Chunker, ChunkingError, sentence_spans
from qa.types import Article

TEXT = (
    "Mr. Pompeo met Sergey V. Lavrov in Sochi. They spoke about Iran! Was it frank? "
    "The U.S. delegation left at 5 p.m. on Tuesday.\n\nNew Start is set to expire in 2021. "
) * 6


def test_sentences_do_not_break_after_titles_or_initials():
    sentences = [TEXT[s:e] for s, e in sentence_spans(TEXT)]
    assert sentences[0] == "Mr. Pompeo met Sergey V. Lavrov in Sochi."
    assert "The U.S. delegation left at 5 p.m. on Tuesday." in sentences


@pytest.mark.parametrize("size,overlap", [(120, 0), (200, 60), (400, 150)])
def test_chunks_map_back_to_the_article_and_respect_size(size, overlap):
    article = Article("a1", "t", TEXT.strip())
    chunks = Chunker(size, overlap).chunk(article, first_id=7)
    assert [c.id for c in chunks] == list(range(7, 7 + len(chunks)))
    covered: set[int] = set()
    for c in chunks:
        assert article.text[c.start : c.end] == c.text
        assert len(c.text) <= size
        covered.update(range(c.start, c.end))
    # Every non-space character of the article is in some chunk.
    assert all(i in covered for i, ch in enumerate(article.text) if not ch.isspace())
    # Neighbouring passages overlap (an answer at a cut is whole in one of them), or meet at a
    # paragraph break: a passage that ends a paragraph is followed by the next paragraph.
    if overlap:
        for a, b in pairwise(chunks):
            gap = article.text[a.end : b.start]
            assert b.start < a.end or (gap.strip() == "" and "\n\n" in gap)


def test_paragraphs_that_fit_are_kept_whole_in_one_passage():
    paragraphs = [
        "Background",
        "The treaty was signed in 2010. It limits deployed warheads to 1,550. Both sides met the limits in 2018.",
        "Talks stalled in 2019. Officials blamed each other.",
        "The treaty expires in 2021 unless extended. An extension needs no vote in the Senate. "
        "Russia has offered to extend it for five years. Washington wants China included.",
    ]
    text = "\n\n".join(paragraphs)
    chunks = Chunker(200, 50).chunk(Article("a1", "t", text))
    for para in paragraphs[1:]:
        assert any(para in c.text for c in chunks), para
    # No passage starts inside a paragraph: each starts where one does.
    starts = {text.index(para) for para in paragraphs}
    assert all(c.start in starts for c in chunks)
    # A heading too short to stand alone travels with the paragraph after it.
    assert chunks[0].text.startswith("Background\n\nThe treaty was signed")


def test_a_paragraph_longer_than_the_passage_is_cut_with_overlap():
    long_paragraph = " ".join(f"Sentence number {n} says something." for n in range(20))
    text = "Short opening paragraph here.\n\n" + long_paragraph + "\n\nClosing words."
    chunks = Chunker(200, 60).chunk(Article("a1", "t", text))
    start, end = text.index(long_paragraph), text.index(long_paragraph) + len(long_paragraph)
    inside = [c for c in chunks if start <= c.start and c.end <= end]
    assert len(inside) >= 3
    assert all(b.start < a.end for a, b in pairwise(inside))


def test_chunks_advance_and_end_on_sentence_boundaries():
    article = Article("a1", "t", TEXT.strip())
    chunks = Chunker(200, 60).chunk(article)
    assert all(b.start > a.start for a, b in pairwise(chunks))
    assert all(c.text[-1] in ".!?" for c in chunks)


def test_a_sentence_longer_than_the_chunk_is_cut_at_spaces():
    article = Article("a1", "t", "word " * 100)
    chunks = Chunker(60, 10).chunk(article)
    assert all(len(c.text) <= 60 and not c.text.startswith(" ") for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks) == "word" * 100


@pytest.mark.parametrize("size,overlap,message", [(10, 0, "at least"), (100, -1, "negative"), (100, 50, "half")])
def test_bad_parameters_are_refused(size, overlap, message):
    with pytest.raises(ChunkingError, match=message):
        Chunker(size, overlap)
