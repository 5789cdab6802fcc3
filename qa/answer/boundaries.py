"""Answer span edges: what a reader's span carries that is not part of the answer.

The reader learned SQuAD's spans, whose edges are loose: "eggshells." with its full stop,
"in Sochi" for a where-question, "(Reuters)" brackets left open. The official SQuAD score ignores
punctuation, so this costs no F1 there; users see it, and "in" costs F1 on news. Trimming only
ever narrows the span, so the answer stays a substring of its article with exact offsets.
"""

from __future__ import annotations

import re

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


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span text[start:end] without the edges that are not the answer's (never empty)."""
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
    return start, end
