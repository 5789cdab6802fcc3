"""Follow-up questions: carry the topic of the conversation into retrieval.

"When was he born?" after "Who is the Russian foreign minister?" (answered "Sergey V.
Lavrov") retrieves with "When was he born? Russian foreign minister Sergey V. Lavrov", and the
reader reads that too (the bare question gives it nothing to match), in the article that gave
the last answer first (`conversation_article`).

A question is a follow-up when it leans on the conversation:
- a pronoun that points back: it, they, he, she, his, their, ...;
- "there" that names a place ("What happened there?"), not the existential "Is there a ...";
- a demonstrative: "this/these/those ...", or "that" where it cannot be the relative
  pronoun ("When was that signed?", "Who said that?"; not "warheads that each side can deploy");
- or, naming nothing itself, a generic "the company / the talks / the airline", or too few
  words to stand alone (fewer than MIN_CONTENT_WORDS content words: "How many were killed?").
A question that names something and has enough words of its own is a new topic, even after
a conversation ("Is there a ceasefire in Gaza?"); so is one whose possessive points at a name
in the question itself ("What did Mary Barra say in her statement?"). Measured on seeds/gold/followups.jsonl
(`python -m bench.followup`; docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from qa.index.words import STOPWORDS, tokenize
from qa.retrieval.hybrid import Retriever
from qa.types import Turn

MIN_CONTENT_WORDS = 4  # fewer, and no name of its own: the question needs the conversation
MAX_ADDED_WORDS = 16  # a long conversation must not drown the question
CONVERSATION_HITS = 5  # BM25 hits searched for the article that gave the last answer

_WORD = re.compile(r"[\w’'$%.-]*\w")
_PRONOUNS = frozenset(
    "it its it's itself they them their theirs themselves he him his himself she her hers herself".split()
)
_DEMONSTRATIVES = frozenset("this these those".split())
_TIME_WORDS = frozenset("year week month morning day season time".split())  # "this week" is now, not back
_BE = frozenset("is are was were be been being 's".split())
_POSSESSIVES = frozenset("its their his her".split())
# Head nouns of "the ..." that only the conversation can resolve when the question names nothing.
_GENERIC_NOUNS = frozenset(
    """company firm airline carrier site website talks meeting summit accident crash attack
    disaster treaty deal agreement match game study report election vote plane aircraft ship storm project panel
    team party city country government minister president leader museum mission court law bill capsule""".split()
)
_NOT_NAMES = frozenset(
    """I January February March April May June July August September October November December
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday""".split()
)


def _words(question: str) -> list[str]:
    return [w.replace("’", "'") for w in _WORD.findall(question)]


def _is_name(word: str, first: bool) -> bool:
    return not first and word[:1].isupper() and word not in _NOT_NAMES


def _points_back(words: list[str]) -> bool:
    lower = [w.lower() for w in words]
    for i, w in enumerate(lower):
        before = lower[i - 1] if i else ""
        after = lower[i + 1] if i + 1 < len(lower) else ""
        if w in _PRONOUNS:
            named_before = any(_is_name(x, j == 0) for j, x in enumerate(words[:i]))
            if not (w in _POSSESSIVES and named_before):  # "Mary Barra ... her statement": within the question
                return True
        if w == "there" and before not in _BE and after not in _BE | {"has", "have", "had", "will", "would"}:
            return True
        if w in _DEMONSTRATIVES and after not in _TIME_WORDS:
            return True
        # "that" after a content word and before more words is a relative pronoun or a
        # conjunction ("the warheads that each side can deploy", "said that ..."): not a reference.
        if w == "that" and (not before or before in STOPWORDS or not after):
            return True
    return False


def _generic_the(words: list[str]) -> bool:
    """ "the airline", "the first meeting": a definite generic noun, one word between at most."""
    lower = [w.lower() for w in words]
    return any(w == "the" and _GENERIC_NOUNS & set(lower[i + 1 : i + 3]) for i, w in enumerate(lower))


def is_follow_up(question: str) -> bool:
    words = _words(question)
    if _points_back(words):
        return True
    if any(_is_name(w, i == 0) for i, w in enumerate(words)):
        return False  # it names what it asks about ("Gaza", "New START")
    return _generic_the(words) or len(tokenize(question)) < MIN_CONTENT_WORDS


def _topics(history: Sequence[Turn]) -> list[str]:
    """The words the conversation is about at its last turn: that turn's question (and, if it
    was a follow-up itself, the topic it followed), then its answer."""
    topic: list[str] = []
    for turn in history:
        own = [w for w in _words(turn.question) if tokenize(w)]
        topic = (topic + own) if is_follow_up(turn.question) else own
        if turn.answer:
            topic = topic + _words(turn.answer)
    return topic


def conversation_article(retriever: Retriever, history: Sequence[Turn | str]) -> str | None:
    """The article the conversation's last answer came from: the best BM25 hit for that turn's
    question and answer whose passage holds the answer (None without one). A follow-up is
    read there first: "Where did the talks take place?" after "When does New START expire?"
    is about the talks of that report, which may not share the follow-up's words."""
    last = next((t for t in reversed(history) if isinstance(t, Turn) and t.answer), None)
    if last is None or not last.answer:
        return None
    hits = retriever.retrieve(f"{last.question} {last.answer}", CONVERSATION_HITS, mode="bm25").hits
    return next((h.chunk.article_id for h in hits if last.answer in h.chunk.text), None)


def retrieval_query(question: str, history: Sequence[Turn | str]) -> str:
    """The question, plus the conversation's topic words when it is a follow-up."""
    return with_topic(question, history) if history and is_follow_up(question) else question


def with_topic(question: str, history: Sequence[Turn | str]) -> str:
    """The question followed by the conversation's most recent topic words that it lacks."""
    turns = [Turn(t) if isinstance(t, str) else t for t in history]
    present = set(tokenize(question))
    added: list[str] = []
    for word in reversed(_topics(turns)):  # the most recent words first, then cut
        key = tokenize(word)
        if key and key[0] not in present and word not in added:
            added.append(word)
        elif not key and word[:1].isupper() and word not in added:
            added.append(word)  # a short name part ("V." in "Sergey V. Lavrov")
    added = list(reversed(added[:MAX_ADDED_WORDS]))
    return f"{question} {' '.join(added)}" if added else question
