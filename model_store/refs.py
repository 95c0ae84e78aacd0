"""Alias history: one JSON line per change of an alias, and the rollback rule read from it.

The log of alias ``A`` is ``logs/A.log``. It is append-only and written under the store lock,
after the ref itself, so the ref is always the authority and the log can lag by at most the last
change (a crash between the two writes). Lines that do not parse (a write torn by a crash) are
skipped.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

#: Actions recorded in a log. ``remove`` clears the alias; the others point it at ``version``.
ACTIONS = ("publish", "promote", "rollback", "remove")


def _actor() -> str:
    """``user@host:pid`` of this process, for the log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RefEvent:
    """One change of an alias.

    Parameters
    ----------
    at : str
        UTC time, ISO 8601.
    alias : str
        The alias that changed (``current``, ``production``, ...).
    action : str
        One of ``ACTIONS``.
    version : str or None
        What the alias points at afterwards (None after ``remove``).
    previous : str or None
        What it pointed at before.
    by : str
        ``user@host:pid`` of the writer.
    """

    at: str
    alias: str
    action: str
    version: str | None
    previous: str | None
    by: str

    @classmethod
    def now(cls, alias: str, action: str, version: str | None, previous: str | None) -> RefEvent:
        """An event stamped with the current time and process."""
        return cls(
            at=datetime.now(UTC).isoformat(timespec="microseconds"),
            alias=alias,
            action=action,
            version=version,
            previous=previous,
            by=_actor(),
        )

    def to_line(self) -> bytes:
        """The event as one JSON line."""
        return json.dumps(asdict(self), sort_keys=True).encode() + b"\n"


def parse_log(data: bytes) -> list[RefEvent]:
    """Events of a log, oldest first; lines that do not parse are skipped."""
    events = []
    for raw in data.splitlines():
        try:
            record = json.loads(raw)
            event = RefEvent(**{field: record[field] for field in RefEvent.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            continue
        if event.action in ACTIONS:
            events.append(event)
    return events


def replay(events: Iterable[RefEvent]) -> list[str]:
    """The stack of values an alias had: promote/publish push, rollback pops, remove clears."""
    stack: list[str] = []
    for event in events:
        if event.action == "remove" or event.version is None:
            stack.clear()
            continue
        if event.action == "rollback" and stack:
            stack.pop()
        if not stack or stack[-1] != event.version:
            stack.append(event.version)
    return stack


def rollback_target(
    events: Iterable[RefEvent], current: str | None, exists: Callable[[str], bool]
) -> str | None:
    """The version a rollback of this alias goes to, or None when there is none.

    The history is replayed into a stack whose top is ``current`` (the ref wins over a log that
    lags it); the target is the nearest older entry that differs from ``current`` and still exists.
    Repeated rollbacks walk further back.
    """
    if current is None:
        return None
    stack = replay(events)
    if not stack or stack[-1] != current:
        if current in stack:
            del stack[len(stack) - stack[::-1].index(current) :]
        else:
            stack.append(current)
    stack.pop()
    while stack and (stack[-1] == current or not exists(stack[-1])):
        stack.pop()
    return stack[-1] if stack else None
