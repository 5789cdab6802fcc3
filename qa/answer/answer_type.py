"""Answer-type agreement: a "how much" question wants an amount, "when" a date, "how many" a count.

The reader scores spans by context and sometimes crowns a span of the wrong kind ("How much did
Texaco pay?" -> "Pennzoil"). Where the question's words say what kind of answer it wants, a
span without a sign of that kind (a digit, a number word, a month, a capitalised name) has its
score multiplied by PENALTY: a span of the right kind scored near it goes first, and a question
that only a wrong kind of span answers falls toward the no-answer threshold, which is the
honest outcome for a question the articles do not answer. Questions whose kind is unclear
(what, which, why, how) are left alone.
"""

from __future__ import annotations

import re

PENALTY = 0.1  # news dev F1 70.4 at 0.5, 70.7 at 0.2, 70.9 at 0.05 and at 0.1 (docs/news-quality.md)

_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundreds?|"
    r"thousands?|millions?|billions?|dozens?|half|quarter|several|few|many|no"
)
_MONTHS = r"jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_DAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|yesterday|tomorrow|week|month|year|century"
_WANTS = [
    ("count", re.compile(r"^\s*how many\b", re.I)),
    (
        "amount",
        re.compile(
            r"^\s*how (?:much|long|far|old|big|large|high|fast)\b|\bwhat (?:percentage|percent|price|amount|share)\b",
            re.I,
        ),
    ),
    ("time", re.compile(r"^\s*when\b|\b(?:what|which) (?:year|date|day|month|time)\b|\bhow long ago\b", re.I)),
    ("name", re.compile(r"^\s*(?:who|whom|whose|where)\b", re.I)),
]
_HAS = {
    "count": re.compile(rf"\d|\b(?:{_NUMBER_WORDS})\b", re.I),
    "amount": re.compile(rf"\d|\b(?:{_NUMBER_WORDS})\b", re.I),  # a currency word alone is not an amount
    "time": re.compile(
        rf"\d|\b(?:{_MONTHS})[a-z]*\b|\b(?:{_DAYS})s?\b|\b(?:spring|summer|autumn|fall|winter|ago|last|next|later|earlier)\b",
        re.I,
    ),
    "name": re.compile(r"(?:^|\s)[A-Z0-9]"),
}


def wanted_type(question: str) -> str | None:
    """The kind of answer the question's words ask for, or None when they do not say."""
    return next((kind for kind, pattern in _WANTS if pattern.search(question)), None)


# A count that is a time or a date ("two weeks", "March 24") answers "how many days?", not "how many players?".
_TIME_COUNT = re.compile(rf"\b(?:{_MONTHS})[a-z]*\.? \d|\b(?:hours?|days?|weeks?|months?|years?)\b", re.I)


def agrees(kind: str | None, answer: str, question: str = "") -> bool:
    """Whether the answer shows a sign of the kind the question wants (always, for None)."""
    if kind is None:
        return True
    if kind == "count" and _TIME_COUNT.search(answer) and not _TIME_COUNT.search(question):
        return False
    return bool(_HAS[kind].search(answer))
