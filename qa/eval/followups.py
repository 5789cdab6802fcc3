"""The follow-up test set: conversations whose last question retrieval must answer in context.

One JSON object a line (seeds/gold/followups.jsonl):
`{"id", "history": [{"question", "answer"?}], "question", "follow_up": bool,
  "article_id": str | null, "passage": str | null}` — `follow_up` says whether the question
leans on the conversation; `passage` is text that the passage retrieval must find holds,
in article `article_id` (null: the articles do not answer it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qa.types import Hit, Turn


class FollowUpFormatError(ValueError):
    """A malformed follow-up set; the message names the line."""


@dataclass(frozen=True)
class FollowUpCase:
    id: str
    history: tuple[Turn, ...]
    question: str
    follow_up: bool
    article_id: str | None
    passage: str | None

    def found_at(self, hits: list[Hit]) -> int | None:
        """Rank (from 1) of the first hit holding the expected passage, or None."""
        if not self.passage:
            return None
        return next(
            (
                i + 1
                for i, h in enumerate(hits)
                if h.chunk.article_id == self.article_id and self.passage in h.chunk.text
            ),
            None,
        )


def load_followups(path: str | Path) -> list[FollowUpCase]:
    cases = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            history = tuple(Turn(t["question"], t.get("answer")) for t in obj["history"])
            cases.append(
                FollowUpCase(
                    str(obj["id"]),
                    history,
                    obj["question"],
                    bool(obj["follow_up"]),
                    obj.get("article_id"),
                    obj.get("passage"),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise FollowUpFormatError(f"{path}:{n}: {exc!r}") from None
    return cases
