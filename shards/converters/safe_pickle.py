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
import pickle
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
            "int, float, bool, None) is accepted in annotation pickles")

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
    # of thousands of dicts loads (3x the time); plain data holds no cycles to collect.
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
