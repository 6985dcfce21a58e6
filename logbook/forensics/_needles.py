"""Literal strings that every match of a regex must contain, to skip a rule's regex on most text.

Python's `re` scans text at a few hundred MB/s at best and much slower for a pattern that starts
with a group; `str.find` scans at GB/s. A rule whose literals are absent from a log cannot match it,
and one whose literals are present needs its regex only on the lines that hold them.
"""

from __future__ import annotations

import re
import sys
from typing import Any

if sys.version_info >= (3, 11):
    import re._parser as _sre
else:  # pragma: no cover
    import sre_parse as _sre

Needle = frozenset[str]  # one of these strings is in every match


def needles(pattern: str) -> tuple[Needle, ...]:
    """Sets of literals that every match of `pattern` contains (one string of each set).

    Returns () when none can be found (the regex then runs on all the text): a pattern that
    ignores case, or is built from classes and repeats only. A wrong answer would hide matches,
    so anything unexpected gives ().
    """
    try:
        parsed = _sre.parse(pattern, re.MULTILINE)
        if parsed.state.flags & re.IGNORECASE:
            return ()
        found = _walk(parsed.data)
    except Exception:  # the regex is valid (compiled already); this is only an optimisation
        return ()
    return tuple(n for n in found if all(s and "\n" not in s for s in n))


def _walk(items: Any) -> list[Needle]:
    """Needles of a sequence of parsed items: runs of literals, and what required groups hold."""
    out: list[Needle] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append(frozenset(["".join(run)]))
            run.clear()

    for op, av in items:
        if op is _sre.LITERAL:
            run.append(chr(av))
        elif op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
            continue  # zero-width: the literals on each side are still adjacent
        elif op is _sre.SUBPATTERN:
            flush()
            _group, add_flags, _del_flags, sub = av
            if not add_flags & re.IGNORECASE:
                out.extend(_walk(sub))
        elif op is _sre.BRANCH:
            flush()
            either = _either(av[1])
            if either:
                out.append(either)
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) or op is getattr(
            _sre, "POSSESSIVE_REPEAT", None
        ):
            flush()
            low, _high, sub = av
            if low >= 1:
                out.extend(_walk(sub))
        elif op is getattr(_sre, "ATOMIC_GROUP", None):
            flush()
            out.extend(_walk(av))
        else:
            flush()  # a class, any character, a backreference: the run ends here
    flush()
    return out


def _either(branches: Any) -> Needle | None:
    """One needle for an alternation: the best needle of each branch, together."""
    strings: set[str] = set()
    for branch in branches:
        found = _walk(branch)
        if not found:
            return None
        strings |= max(found, key=lambda n: min(len(s) for s in n))
    return frozenset(strings)
