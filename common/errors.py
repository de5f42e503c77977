"""The one base class for errors caused by what a user gave us (files, names, settings).

Every layer raises subclasses of ``UniLSegError`` for bad input: a corrupt image, an unknown
preset, a checkpoint that is not one, a wrong setting. The command line prints exactly these
as one line and exits non-zero; anything else is a bug and keeps its traceback. It lives in
``common``, the bottom package, which every other layer may import.
"""

from __future__ import annotations

import os
import re


class UniLSegError(ValueError):
    """Bad user input: the message alone tells the user what to fix."""


class FormatError(UniLSegError):
    """A record breaks the shard format; the message says which field and why."""


class ShardError(UniLSegError):
    """A damaged split or shard; ``str(e)`` is one line, ``"<where>: <what is wrong>"``.

    Raised for data that is wrong (a missing or truncated shard, a checksum mismatch, a member
    that breaks the format), never for a transient failure: retrying does not help, so
    training stops at once instead of restarting its workers.

    ``ShardError(where, problem)``, or ``ShardError("<where>: <problem>")`` with the message
    already composed (split at its first ": ").

    Attributes:
        where (str): the shard, file or split (location) that is damaged.
        problem (str): what is wrong with it.
    """

    def __init__(self, where: str | os.PathLike, problem: str | None = None):
        if problem is None:
            message = os.fspath(where)
            where, problem = message.split(": ", 1) if ": " in message else ("", message)
        super().__init__(f"{os.fspath(where)}: {problem}" if where else problem)
        self.where, self.problem = os.fspath(where), problem


class UnknownNameError(UniLSegError, KeyError):
    """A name looked up in a registry or preset folder that does not exist.

    Also a KeyError, so ``name in registry``-style callers that catch KeyError keep working.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingInputError(UniLSegError, FileNotFoundError):
    """A path or URL the user named does not exist (or holds nothing usable)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# "<_io.BytesIO object at 0x7f...>" and the like: a repr that differs on every run
_ADDRESS_REPR = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")


def describe(e: BaseException) -> str:
    """An exception's message as a reason to record, without the memory addresses of object
    reprs (PIL names the BytesIO it could not read), so that a reason reads the same on every
    run (and a re-run does not record the same rejection again)."""
    return _ADDRESS_REPR.sub(r"<\1>", str(e))
