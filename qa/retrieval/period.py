"""A period named in the question ("in 2005", "as of May 2019", "before 2010").

    "Who was the US secretary of state in 2015?"  -> answers from articles dated 2015 first
    "Who is the US secretary of state as of 2016?" -> articles dated up to 2016-12-31 (and undated
                                                      ones), newest preferred
    "What did Apple release before 2007?"          -> dated up to 2006-12-31 first; "since/after 2010" likewise

The year must end the phrase ("in 2016?", "in May 2019,"), so "in 2016 elections" is left alone.
A filter the caller gives wins over the question. Only "as of" filters: the state of things at
a date cannot come from a later article. Any other period is an event's year as often as a
story's date (a 2007 story gives Apple's 2006 revenue, a 2019 story says New START expires in
2021), so it never drops an article: it puts an answer from an article dated in the period
first when that answers about as surely (qa/answer/recency.py). Either way the reader reads the
question without the phrase: an article of 2015 names the secretary of state without saying "in
2015", and a reader asked for "in 2015" looks for that year in the passage (John Kerry: 0.75
without it, 0.001 with it); retrieval keeps it, where it matches the year in the text.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from qa.types import Period

_MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_name) if name}
_PERIOD = re.compile(
    r"\b(?P<word>as of|in|during|before|until|prior to|since|after)\s+"
    rf"(?:(?P<month>{'|'.join(_MONTHS)})\s+)?(?P<year>1[89]\d\d|2\d\d\d)(?=\s*(?:[?.!,;]|$))",
    re.IGNORECASE,
)


def _bounds(year: int, month: int | None) -> tuple[str, str]:
    if month is None:
        return f"{year:04d}-01-01", f"{year:04d}-12-31"
    last = calendar.monthrange(year, month)[1]
    return f"{year:04d}-{month:02d}-01", f"{year:04d}-{month:02d}-{last:02d}"


def _shift(iso: str, days: int) -> str:
    return (date.fromisoformat(iso) + timedelta(days=days)).isoformat()


def period_in(question: str) -> Period | None:
    """The last period the question names, or None."""
    matches = list(_PERIOD.finditer(question))
    if not matches:
        return None
    m = matches[-1]
    word = " ".join(m.group("word").lower().split())
    month = _MONTHS.get((m.group("month") or "").lower())
    first, last = _bounds(int(m.group("year")), month)
    phrase = m.group(0)
    if word == "as of":
        return Period(None, last, as_of=True, phrase=phrase)
    if word in ("before", "until", "prior to"):
        return Period(None, _shift(first, -1) if word != "until" else last, phrase=phrase)
    if word == "since":
        return Period(first, None, phrase=phrase)
    if word == "after":
        return Period(_shift(last, 1), None, phrase=phrase)
    return Period(first, last, phrase=phrase)
