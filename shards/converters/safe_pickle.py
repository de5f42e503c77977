"""Loading the pickled annotation files of referring sets without running their code.

refer's ``refs(unc).p`` (RefCOCO, RefCOCO+, RefCOCOg) and ReLA's ``grefs(unc).p`` are
pickles of plain data: a list of dicts of str, int, float and lists. A pickle can name any
importable callable (``os.system``) and call it while loading, so these files are read with
an unpickler that refuses every global: only the opcodes that build builtin containers and
scalars work, and a file that asks for anything else fails before anything runs.

The original files were written by Python 2: their byte strings load as ``bytes`` here and
are decoded (UTF-8, Latin-1 as a fallback) so callers always see ``str``.
"""

from __future__ import annotations

import gc
import io
import itertools
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from shards.converters import ConvertError


class UnsafePickleError(ConvertError, pickle.UnpicklingError):
    """A pickle asked for something other than plain data (a class, a function, ...)."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only dict/list/tuple/set/str/bytes/int/float/bool/None.

    Every global lookup (classes, functions, ``__reduce__`` callables) and every persistent
    id is refused, so loading a file never imports or calls anything.
    """

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - see class docstring
        raise UnsafePickleError(
            f"refusing to load the global {module}.{name}: only plain data (dict, list, tuple, str, "
            "int, float, bool, None) is accepted in annotation pickles"
        )

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise UnsafePickleError(f"refusing the persistent id {pid!r} in an annotation pickle")


def _decode_str(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _decode_bytes(obj: Any) -> Any:
    """Python 2 ``str`` values load as bytes: turns them (and dict keys) into str, recursively.

    Lists and dicts are changed in place, so a large file is never held twice in memory.
    """
    if isinstance(obj, bytes):
        return _decode_str(obj)
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, (bytes, list, dict, tuple)):
                obj[i] = _decode_bytes(v)
        return obj
    if isinstance(obj, dict):
        if any(isinstance(k, bytes) for k in obj):
            return {(_decode_str(k) if isinstance(k, bytes) else k): _decode_bytes(v) for k, v in obj.items()}
        for k, v in obj.items():
            if isinstance(v, (bytes, list, dict, tuple)):
                obj[k] = _decode_bytes(v)
        return obj
    if isinstance(obj, tuple):
        return tuple(_decode_bytes(v) for v in obj)
    return obj


def _load(f: BinaryIO, name: str) -> Any:
    # The cyclic GC would scan the growing heap again and again while a refs file of tens
    # of thousands of dicts loads (a multiple of the time); plain data holds no cycles to collect.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load_plain(f, name)
    finally:
        if was_enabled:
            gc.enable()


def _load_plain(f: BinaryIO, name: str) -> Any:
    try:
        obj = RestrictedUnpickler(f, encoding="bytes").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{name}: {e}") from None
    except Exception as e:  # truncated or corrupt pickles raise many types
        raise ConvertError(f"{name}: not a readable pickle: {type(e).__name__}: {e}") from e
    try:
        return _decode_bytes(obj)
    except RecursionError as e:
        raise ConvertError(f"{name}: data nested too deeply") from e


def safe_loads(data: bytes, name: str = "pickle") -> Any:
    """Loads plain data from pickle bytes.

    Args:
        data (bytes): the pickle.
        name (str): what to call the input in error messages (usually its file name).

    Raises:
        UnsafePickleError: the pickle names a global or a persistent id.
        ConvertError: the bytes are not a readable pickle.
    """
    return _load(io.BytesIO(data), name)


def safe_load(path: str | Path) -> Any:
    """Loads plain data from a pickle file, streamed from disk (see safe_loads)."""
    path = Path(path)
    with open(path, "rb", buffering=1 << 20) as f:
        return _load(f, path.name)


class _SharedAcrossItems(Exception):
    """A later item of the list refers to an object of an earlier one (memo entry pruned)."""


_PRUNED = object()  # stands for a memo entry of an item already handed over


class _ListStreamer(pickle._Unpickler):  # noqa: SLF001 - the pure-Python unpickler is the one with hooks
    """Restricted like RestrictedUnpickler; hands each item of the top-level list to ``keep``.

    Items are decoded (bytes -> str) and passed on as soon as they are appended, and only
    what ``keep`` returns (unless None) is kept; the memo entries an item made are dropped
    with it, so the whole raw list never exists. An item that refers back to an object of
    an earlier one raises _SharedAcrossItems (the caller then loads the file whole).
    """

    def __init__(self, f: BinaryIO, keep: Callable[[Any], Any]):
        super().__init__(f, encoding="bytes")
        self._keep = keep
        self._memo_seen = 0  # memo entries that existed at the last prune
        self._top: list | None = None
        self.kept: list[Any] = []

    find_class = RestrictedUnpickler.find_class
    persistent_load = RestrictedUnpickler.persistent_load

    def _take(self, items: list[Any]) -> None:
        for item in items:
            out = self._keep(_decode_bytes(item))
            if out is not None:
                self.kept.append(out)
        self._prune_memo()

    def _prune_memo(self) -> None:
        """Drops the memo entries made since the last item (newest last in the dict's order).

        Placeholders, not deletions: MEMOIZE numbers entries by len(memo). A file whose
        items are pickled one by one reuses small memo indices instead, and stays small.
        """
        new = len(self.memo) - self._memo_seen
        for key in list(itertools.islice(reversed(self.memo), new)):
            self.memo[key] = _PRUNED
        self._memo_seen = len(self.memo)

    def _check_get(self) -> None:
        if self.stack[-1] is _PRUNED:
            raise _SharedAcrossItems()

    def load_get(self) -> None:
        super().load_get()
        self._check_get()

    def load_binget(self) -> None:
        super().load_binget()
        self._check_get()

    def load_long_binget(self) -> None:
        super().load_long_binget()
        self._check_get()

    def _mark_top(self) -> None:
        if self._top is None and not self.metastack and len(self.stack) == 1 and self.stack[0] == []:
            self._top = self.stack[0]

    def load_empty_list(self) -> None:  # protocol >= 1: EMPTY_LIST, then APPENDS batches
        super().load_empty_list()
        self._mark_top()

    def load_list(self) -> None:  # protocol 0: MARK LIST, then one APPEND per item
        super().load_list()
        self._mark_top()

    def load_append(self) -> None:
        value = self.stack.pop()
        if self.stack[-1] is self._top:
            self._take([value])
        else:
            self.stack[-1].append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        if self.stack[-1] is self._top:
            self._take(items)
        else:
            self.stack[-1].extend(items)

    dispatch = dict(pickle._Unpickler.dispatch)  # noqa: SLF001
    dispatch[pickle.EMPTY_LIST[0]] = load_empty_list
    dispatch[pickle.LIST[0]] = load_list
    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.GET[0]] = load_get
    dispatch[pickle.BINGET[0]] = load_binget
    dispatch[pickle.LONG_BINGET[0]] = load_long_binget


def safe_load_list(path: str | Path, keep: Callable[[Any], Any]) -> list[Any]:
    """Streams a pickled list from a file: ``keep(item)`` for each item, returns the non-None results.

    Same restrictions and errors as safe_load; a pickle whose top level is not a list raises
    ConvertError. Memory holds what ``keep`` returns and one item at a time. If an item
    refers to an object of an earlier item (``pickle.dump`` stores a shared object once),
    the file is loaded whole instead and ``keep`` runs again on every item: keep must be a
    filter without other side effects than idempotent ones. It spends more time than
    safe_load (the pure-Python unpickler) for the memory it saves.

    Raises:
        UnsafePickleError: the pickle names a global or a persistent id.
        ConvertError: unreadable, not a list, or whatever ``keep`` raises.
    """
    path = Path(path)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with open(path, "rb", buffering=1 << 20) as f:
            loader = _ListStreamer(f, keep)
            try:
                top = loader.load()
            except _SharedAcrossItems:
                loader = None
            except (UnsafePickleError, ConvertError) as e:
                raise type(e)(f"{path.name}: {e}") from None
            except Exception as e:  # truncated or corrupt pickles raise many types
                raise ConvertError(f"{path.name}: not a readable pickle: {type(e).__name__}: {e}") from e
    finally:
        if was_enabled:
            gc.enable()
    if loader is None:
        whole = safe_load(path)
        if not isinstance(whole, list):
            raise ConvertError(f"{path.name}: expected a pickled list, got {type(whole).__name__}")
        return [out for item in whole if (out := keep(item)) is not None]
    if top is not loader._top:
        raise ConvertError(f"{path.name}: expected a pickled list, got {type(top).__name__}")
    return loader.kept
