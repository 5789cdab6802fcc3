"""Reading MRQA-format files (.jsonl or .jsonl.gz): a header line, then one context per line
with its questions. NewsQA, Natural Questions, TriviaQA, SearchQA, HotpotQA and others are
distributed this way for reading comprehension (MRQA 2019 shared task).

    {"header": {"dataset": "NewsQA", "split": "dev"}}
    {"context": "...", "qas": [{"qid": "...", "question": "...", "answers": ["..."],
      "detected_answers": [{"text": "...", "char_spans": [[start, end_inclusive]]}]}]}

Contexts carry markers: [TLE] before a title, [DOC] between documents, [PAR] between
paragraphs. They become blanks of the same length (a paragraph break for [PAR]), so the
text reads as prose while every character offset of the file still holds.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


class MrqaFormatError(ValueError):
    """The file is not an MRQA file; the message names the line and field that are wrong."""


@dataclass(frozen=True)
class MrqaQuestion:
    id: str
    question: str
    answers: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]  # [start, end) of each detected answer in the context


@dataclass(frozen=True)
class MrqaContext:
    context: str  # markers blanked, offsets unchanged
    questions: tuple[MrqaQuestion, ...]
    dataset: str


_MARKER = re.compile(r"\[(?:PAR|DOC|TLE|SEP)\]")


def blank_markers(context: str) -> str:
    return _MARKER.sub(lambda m: "\n\n   " if m.group() in ("[PAR]", "[DOC]") else " " * 5, context)


def open_text(path: Path) -> TextIO:
    """A text handle on a plain or gzip-compressed file."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")


def is_mrqa(path: Path) -> bool:
    """Whether the file's first line is an MRQA header."""
    try:
        with open_text(path) as fh:
            first = json.loads(fh.readline())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError):
        return False
    return isinstance(first, dict) and isinstance(first.get("header"), dict)


def _spans(qa: dict, context: str, where: str) -> tuple[tuple[int, int], ...]:
    spans = []
    for d, detected in enumerate(qa.get("detected_answers") or []):
        if not isinstance(detected, dict) or not isinstance(detected.get("char_spans"), list):
            raise MrqaFormatError(f"{where}.detected_answers[{d}]: missing list 'char_spans'")
        for span in detected["char_spans"]:
            if (
                not isinstance(span, list)
                or len(span) != 2
                or not all(isinstance(x, int) for x in span)
                or not 0 <= span[0] <= span[1] < len(context)
            ):
                raise MrqaFormatError(f"{where}.detected_answers[{d}]: char span {span!r} is not inside the context")
            spans.append((span[0], span[1] + 1))  # MRQA's ends are inclusive
    return tuple(spans)


def load_mrqa(path: str | Path) -> list[MrqaContext]:
    """Every context of the file with its questions, in file order."""
    path = Path(path)
    out: list[MrqaContext] = []
    try:
        with open_text(path) as fh:
            header = json.loads(fh.readline()).get("header", {})
            dataset = str(header.get("dataset", "MRQA"))
            for n, line in enumerate(fh, start=2):
                if not line.strip():
                    continue
                where = f"{path}:{n}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MrqaFormatError(f"{where}: not valid JSON ({exc.msg})") from None
                context = record.get("context") if isinstance(record, dict) else None
                if not isinstance(context, str) or not context.strip():
                    raise MrqaFormatError(f"{where}: 'context' must be a non-empty string")
                if not isinstance(record.get("qas"), list):
                    raise MrqaFormatError(f"{where}: 'qas' must be a list")
                questions = []
                for q, qa in enumerate(record["qas"]):
                    wq = f"{where}: qas[{q}]"
                    if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                        raise MrqaFormatError(f"{wq}: 'question' must be a string")
                    answers = qa.get("answers", [])
                    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                        raise MrqaFormatError(f"{wq}: 'answers' must be a list of strings")
                    questions.append(
                        MrqaQuestion(
                            str(qa.get("qid", f"{n}-{q}")), qa["question"], tuple(answers), _spans(qa, context, wq)
                        )
                    )
                out.append(MrqaContext(blank_markers(context), tuple(questions), dataset))
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise MrqaFormatError(f"{path}: cannot be read as UTF-8 JSON lines ({exc})") from exc
    return out
