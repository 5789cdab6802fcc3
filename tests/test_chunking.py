import pytest

from qa.chunking import Chunker, ChunkingError, sentence_spans
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
    covered = set()
    for c in chunks:
        assert article.text[c.start : c.end] == c.text
        assert len(c.text) <= size
        covered.update(range(c.start, c.end))
    # Every non-space character of the article is in some chunk.
    assert all(i in covered for i, ch in enumerate(article.text) if not ch.isspace())
    if overlap:
        assert any(b.start < a.end for a, b in zip(chunks, chunks[1:]))


def test_chunks_advance_and_end_on_sentence_boundaries():
    article = Article("a1", "t", TEXT.strip())
    chunks = Chunker(200, 60).chunk(article)
    assert all(b.start > a.start for a, b in zip(chunks, chunks[1:]))
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
