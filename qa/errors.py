"""QAError: the base of every problem a user can fix (bad input, a missing or stale index, a
missing model), as opposed to a bug. The CLI prints one as a one-line error; the API answers
it with a 4xx. Subclasses keep their builtin base too (ValueError, KeyError, ...) so existing
`except ValueError` code still catches them. This module imports nothing: every stage may use it."""

from __future__ import annotations


class QAError(Exception):
    """A problem the user can fix; the message says what is wrong and, where it can, how to fix it."""
