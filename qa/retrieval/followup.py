"""Follow-up questions: carry the key terms of the previous turn into retrieval.

"When does it expire?" after "What does New START limit?" retrieves with
"When does it expire? New START limit". A question is treated as a follow-up when it has
a pronoun or demonstrative that points back ("it", "they", "that treaty"), or no content word
of its own ("And then?"). Only retrieval sees the added terms; the reader reads the user's words.
"""

from __future__ import annotations

import re
from typing import Sequence

from qa.index.lexical import tokenize

_ANAPHORA = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|he|him|his|she|her|hers|this|that|these|those|there|then|the same)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[\w’'-]+")


def is_follow_up(question: str) -> bool:
    return bool(_ANAPHORA.search(question)) or not tokenize(question)


def retrieval_query(question: str, history: Sequence[str]) -> str:
    """The question, plus key words of the most recent earlier question when it is a follow-up."""
    if not history or not is_follow_up(question):
        return question
    present = set(tokenize(question))
    for previous in reversed(history):
        words = [w for w in _WORD.findall(previous) if tokenize(w) and tokenize(w)[0] not in present]
        if words:
            return f"{question} {' '.join(words)}"
    return question
