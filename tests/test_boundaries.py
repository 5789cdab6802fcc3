import pytest

from qa.answer.boundaries import split_joined_names, trim
from qa.reader.extractive import ReaderSpan


@pytest.mark.parametrize(
    "span, want",
    [
        ("eggshells.", "eggshells"),
        ("in 2021", "2021"),
        ("in Sochi,", "Sochi"),
        ("on March 3", "March 3"),
        ("by 155,221 bags", "155,221 bags"),
        ("the U.S.", "the U.S."),
        ("Texaco Inc.", "Texaco Inc."),
        ("Sergey V. Lavrov", "Sergey V. Lavrov"),
        ("(Reuters", "Reuters"),
        ("Gulf Cooperation Council (GCC)", "Gulf Cooperation Council (GCC)"),
        ('"Sputnik"', '"Sputnik"'),
        ('Sputnik"', "Sputnik"),
        ("in which", "in which"),  # no date or name after the preposition: kept
        ("?", "?"),  # never empty
        ("Intrepid Museum.\n\nSpace", "Intrepid Museum"),
    ],
)
def test_trim_keeps_only_the_answer(span, want):
    text = f"Before it, {span} and after."
    start = text.index(span)
    s, e = trim(text, start, start + len(span))
    assert text[s:e] == want
    assert start <= s < e <= start + len(span)


@pytest.mark.parametrize(
    "text, span, want",
    [
        ("sold its 31.7 pct stake", "31.7", "31.7 pct"),
        ("received 5.2 mln stg in fees", "5.2", "5.2 mln stg"),
        ("a shortfall of 900,000 bpd last month", "900,000", "900,000 bpd"),
        ("cut the rate five times since", "five", "five times"),
        ("bought 120 trucks", "120", "120"),  # not a unit: unchanged
    ],
)
def test_a_bare_amount_takes_its_units(text, span, want):
    start = text.index(span)
    s, e = trim(text, start, start + len(span))
    assert text[s:e] == want


@pytest.mark.parametrize(
    "text, span, want",
    [
        ("agreed to ship 25,000 tonnes of soybeans", "25", "25,000 tonnes"),
        ("a 1.5 pct rise", "1.", "1.5 pct"),
        ("the Belvidere plant", "elvidere", "Belvidere"),
        ("sold 25, then 30", "25", "25"),  # a comma before a space ends the number
    ],
)
def test_a_span_never_cuts_a_word(text, span, want):
    start = text.index(span)
    s, e = trim(text, start, start + len(span))
    assert text[s:e] == want


def _span(text: str, part: str, score: float, passage: int = 0) -> ReaderSpan:
    start = text.index(part)
    return ReaderSpan(passage, start, start + len(part), part, score)


PASSAGE = "Secretary of State Mike Pompeo and Sergey V. Lavrov, the Russian foreign minister, met."


def test_two_joined_names_give_way_to_the_readers_candidate_inside_one():
    spans = [
        _span(PASSAGE, "Mike Pompeo and Sergey V. Lavrov", 0.4),
        _span(PASSAGE, "Sergey V. Lavrov", 0.1),
        _span(PASSAGE, "Lavrov", 0.05),
        _span(PASSAGE, "Mike Pompeo", 0.02),
    ]
    split = split_joined_names("Who is the Russian foreign minister?", spans)
    assert [(s.text, s.score) for s in split] == [("Sergey V. Lavrov", 0.4), ("Lavrov", 0.05), ("Mike Pompeo", 0.02)]
    # Not for a question that may want several, nor without a candidate inside.
    assert split_joined_names("Who met in Sochi?", spans) == spans
    assert split_joined_names("Who is the minister?", spans[:1]) == spans[:1]
