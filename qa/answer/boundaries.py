"""Answer span edges: what a reader's span carries that is not part of the answer.

The reader learned SQuAD's spans, whose edges are loose: "eggshells." with its full stop,
"in Sochi" for a where-question, "(Reuters)" brackets left open. On newswire it also stops short:
"25" inside "25,000", "31.7" before "pct", a span running on into the next paragraph. The
official SQuAD score ignores punctuation, so loose edges cost no F1 there; users see them, and on
news the short ones cost F1. Every step moves an edge within the article's text, so the answer
stays a substring of its article with exact offsets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from qa.reader.extractive import ReaderSpan

# A full stop that belongs to the last word: "U.S.", "Inc.", "Sergey V." stays.
_ABBREVIATION = re.compile(r"(?:\b[A-Za-z]\.)+$|\b(?:Inc|Corp|Co|Ltd|Jr|Sr|St|Bros|Dr|Mr|Mrs|Ms|No|Dlrs|dlrs)\.$")
_TRAILING = ",;:!?"
_CLOSERS = {")": "(", "]": "[", '"': '"', "”": "“", "’": "‘"}
# A preposition before a date, a year, an amount or a name is the question's, not the answer's
# ("When?" -> "in 2021"; "Where?" -> "in Sochi").
_LEADING = re.compile(r"^(?:in|on|at|during|since|from|by)\s+(?=[0-9A-Z$£€¥])")


def _unbalanced_closer(text: str) -> bool:
    closer = text[-1]
    opener = _CLOSERS.get(closer)
    if opener is None:
        return False
    if opener == closer:  # straight quotes: unbalanced when odd
        return text.count(closer) % 2 == 1
    return text.count(closer) > text.count(opener)


def _unbalanced_opener(text: str) -> bool:
    opener = text[0]
    closer = next((c for c, o in _CLOSERS.items() if o == opener and c != o), None)
    if closer is None:
        return opener in "\"'" and text.count(opener) % 2 == 1
    return text.count(opener) > text.count(closer)


# Words that finish an amount: a reader trained on Wikipedia stops before newswire units
# ("31.7" for "31.7 pct", "5.2" for "5.2 mln stg"), and the amount without them is another answer.
_UNIT = (
    r"pct|percent|per cent|%|dlrs?|dollars?|cents?|yen|marks?|francs?|stg|sterling|pounds?|lire|pesos?|"
    r"rupees?|guilders?|crowns?|mln|million|billion|bln|trillion|bpd|barrels?|tonnes?|tons?|ounces?|"
    r"bushels?|bags|kilos?|points?|shares?|times|hours|days|weeks|months|years|miles|km|kilometres?"
)
_UNITS_AFTER_NUMBER = re.compile(rf"(?:\s+(?:{_UNIT})\b){{1,2}}", re.I)
_ENDS_IN_NUMBER = re.compile(
    r"(?:\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|thousand|mln|million|billion))$",
    re.I,
)


def with_units(text: str, start: int, end: int) -> int:
    """The end of text[start:end] taken past the unit words that follow its number, if any."""
    if not _ENDS_IN_NUMBER.search(text[start:end]):
        return end
    units = _UNITS_AFTER_NUMBER.match(text, end)
    return units.end() if units else end


def whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """text[start:end] widened to whole words and numbers: a span cut inside "25,000" is "25,000"."""

    def inside(i: int) -> bool:  # whether position i (between text[i-1] and text[i]) splits a token
        if i <= 0 or i >= len(text):
            return False
        before, after = text[i - 1], text[i]
        if before.isalnum() and after.isalnum():
            return True
        digit_mark = before in ",." and after.isdigit() and i >= 2 and text[i - 2].isdigit()
        return digit_mark or (after in ",." and before.isdigit() and i + 1 < len(text) and text[i + 1].isdigit())

    while inside(start):
        start -= 1
    while inside(end):
        end += 1
    return start, end


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span text[start:end] without the edges that are not the answer's (never empty): cut
    at a line break (an answer does not run from one paragraph into the next), then loose
    punctuation and prepositions off its edges, then taken past the units of a bare amount."""
    start, end = whole_words(text, start, end)
    line = text.find("\n", start, end)
    if line > start:
        end = line
    while end - start > 1:
        span = text[start:end]
        stripped = len(span) - len(span.rstrip())
        if stripped:
            end -= stripped
        elif span[-1] in _TRAILING or (span[-1] == "." and not _ABBREVIATION.search(span)):
            end -= 1
        elif _unbalanced_closer(span):
            end -= 1
        else:
            break
    while end - start > 1:
        span = text[start:end]
        stripped = len(span) - len(span.lstrip())
        lead = _LEADING.match(span)
        if stripped:
            start += stripped
        elif lead:
            start += lead.end()
        elif _unbalanced_opener(span):
            start += 1
        else:
            break
    return start, with_units(text, start, end)


_WHO_ONE = re.compile(r"^\s*who(?:'s| is| was)\b", re.I)  # one person asked for
_JOINED = re.compile(r"\s+and\s+(?=[A-Z])")


def split_joined_names(question: str, spans: Sequence[ReaderSpan]) -> list[ReaderSpan]:
    """For "Who is ...?", a span of two names joined by "and" ("Mike Pompeo and Sergey V.
    Lavrov") gives way to the reader's own best candidate inside one of the names, which takes
    the joined span's score: the reader was sure where the answer starts or ends, not that both
    names answer. Kept as it is when the reader proposed nothing inside either name."""
    if not _WHO_ONE.match(question):
        return list(spans)
    out = list(spans)
    for joined in spans:
        if not _JOINED.search(joined.text) or not joined.text[:1].isupper():
            continue
        inside = [
            s
            for s in spans
            if s.passage == joined.passage
            and joined.start <= s.start
            and s.end <= joined.end
            and (s.start, s.end) != (joined.start, joined.end)
            and not _JOINED.search(s.text)
            and s.text[:1].isupper()
        ]
        if inside:
            best = max(inside, key=lambda s: s.score)
            out = [replace(s, score=max(s.score, joined.score)) if s is best else s for s in out if s is not joined]
    return out
