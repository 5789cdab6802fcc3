import pytest

from qa.answer.boundaries import trim


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
