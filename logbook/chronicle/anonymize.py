"""`logbook chronicle --anonymize`: host names, user names and home folders replaced by stable
stand-ins (host-001, user-1, /home/user-1), the same everywhere in the pages and the data.

The names come from the record itself (the attempts', nodes', snapshots' and events' hosts, the
users that ran the wrappers, HOME, USER and LOGNAME at launch), so a name that appears in free text
(a log line, a path in a traceback, a note) is replaced too. System accounts (root, nobody, ...)
say nothing about anyone and stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SYSTEM_USERS = frozenset(
    {"root", "nobody", "daemon", "admin", "ubuntu", "debian", "user", "runner"}
)
_HOME = re.compile(r"(?P<base>/home|/Users|/u|/users)/(?P<name>[A-Za-z0-9._-]+)")


class Anonymizer:
    """Replace known host and user names, and home folders, in any text."""

    def __init__(self, hosts: Iterable[str | None], users: Iterable[str | None]) -> None:
        """Args:
        hosts: host names on record, in the order to number them.
        users: user names on record (system accounts are ignored).
        """
        self.hosts: dict[str, str] = {}
        self._numbered = 0  # stand-ins given: short names share their host's, never a number
        for h in sorted({h for h in hosts if h}):
            self.hosts[h] = self._next_host()
            short = h.split(".")[0]
            if short != h and short not in self.hosts:  # node17.cluster.example -> node17
                self.hosts[short] = self.hosts[h]
        self.users: dict[str, str] = {}
        for u in sorted({u for u in users if u and u not in SYSTEM_USERS}):
            self.users[u] = f"user-{len(self.users) + 1}"
        names = {**self.users, **self.hosts}
        words = sorted(names, key=len, reverse=True)
        # A name counts only as a whole token: "vm" is replaced in "on vm:", not in "vmstat".
        self._pattern = (
            re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, words)) + r")(?![\w-])")
            if words
            else None
        )
        self._names = names

    def host(self, name: str | None) -> str | None:
        """The stand-in of one host name (an unknown one gets the next number)."""
        if name is None:
            return None
        if name not in self.hosts:
            self.hosts[name] = self._next_host()
        return self.hosts[name]

    def _next_host(self) -> str:
        # (Counting the names taken gave two hosts one stand-in once a short name was among them.)
        self._numbered += 1
        return f"host-{self._numbered:03d}"

    def text(self, text: str) -> str:
        """`text` with every known name and home folder replaced."""
        text = _HOME.sub(self._home, text)
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._names[m.group(1)], text)

    def _home(self, m: re.Match[str]) -> str:
        name = m.group("name")
        if name in SYSTEM_USERS:
            return m.group(0)
        if name not in self.users:
            self.users[name] = f"user-{len(self.users) + 1}"
        return f"{m.group('base')}/{self.users[name]}"
