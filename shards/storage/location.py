"""A location: where a file or directory is, as one value (issue 22).

A :class:`Location` holds a local path or an fsspec URL *and* the fsspec options needed to
reach it (keys, endpoint, ...), so that code passes one object instead of a location and a
``storage_options`` dict beside it. Paths under it (``loc / "train"``, :func:`join`,
:func:`parent`) keep its options. A plain string or ``os.PathLike`` is a location too: one
with no options (the backend's own credential chain applies: for S3 the AWS environment,
``~/.aws``, ``AWS_ENDPOINT_URL``; fsspec's configuration).

The options may hold secrets, so a Location shows only its URL: ``str``, ``repr``, f-strings,
logging, ``os.fspath``, pydantic's serialization (``model_dump``, ``model_dump_json``) and
FastAPI's ``jsonable_encoder`` (what Prefect records flow parameters with: it takes an unknown
object apart with ``vars()``, and the options live in a slot outside the instance ``__dict__``).
``json.dumps`` refuses it (write ``str(loc)``). Pickling keeps the options: Ray tasks and Ray
Train workers need them to reach the data.

The functions here only compute locations (no I/O); they return a Location when given one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

PathOrLocation = Union[str, "os.PathLike[str]", "Location"]


class Location:
    """A local path or fsspec URL with the fsspec options that reach it; immutable.

    Args:
        url (str | os.PathLike | Location): a local path, ``file://...`` or any fsspec URL
            (``s3://bucket/x``). A Location given here keeps its options unless ``options``
            is given.
        options (Mapping | None): fsspec storage options (``key``, ``secret``,
            ``endpoint_url``, ...); never shown, never written.
    """

    __slots__ = ("__dict__", "_options")  # the URL in __dict__ (what vars() shows), options apart

    url: str

    def __init__(self, url: PathOrLocation, options: Mapping[str, Any] | None = None):
        if isinstance(url, Location) and options is None:
            options = url._options
        object.__setattr__(self, "url", os.fspath(url))
        object.__setattr__(self, "_options", dict(options) if options else {})

    @property
    def options(self) -> dict[str, Any]:
        """A copy of the fsspec options ({} when there are none)."""
        return dict(self._options)

    def _derived(self, url: str) -> Location:
        """Another location reached with the same options (shared: they are never changed)."""
        loc = object.__new__(Location)
        object.__setattr__(loc, "url", url)
        object.__setattr__(loc, "_options", self._options)
        return loc

    def __truediv__(self, part: str) -> Location:
        return join(self, part)

    def __fspath__(self) -> str:
        return self.url

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"Location({self.url!r})"  # never the options

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Location):
            return NotImplemented
        return self.url == other.url and self._options == other._options

    def __hash__(self) -> int:
        return hash(self.url)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Location cannot be changed")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("a Location cannot be changed")

    def __reduce__(self):
        return (Location, (self.url, self._options or None))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """pydantic: validated from a string or a Location (kept as is, options included);
        serialized as its URL only, in Python and JSON mode alike."""
        from pydantic_core import core_schema

        from_str = core_schema.no_info_after_validator_function(cls, core_schema.str_schema())
        return core_schema.json_or_python_schema(
            json_schema=from_str,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_str]),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


def options_of(loc: PathOrLocation) -> dict[str, Any]:
    """The fsspec options of a location ({} for a plain path or URL)."""
    return loc.options if isinstance(loc, Location) else {}


def like(loc: PathOrLocation, url: str) -> Any:
    """``url`` reached the way ``loc`` is: a Location with its options, or a string.
    (A location read back from a file or record is a string: this gives it its options.)"""
    return loc._derived(url) if isinstance(loc, Location) else url


def is_url(loc: PathOrLocation) -> bool:
    """True for ``protocol://...`` locations (``file://`` included)."""
    return "://" in os.fspath(loc)


def local_path(loc: PathOrLocation) -> str | None:
    """The local file path of a location, or None if it is not on the local filesystem."""
    s = os.fspath(loc)
    if "://" not in s:
        return s
    if s.startswith("file://"):
        return s[len("file://") :]
    return None


def is_local(loc: PathOrLocation) -> bool:
    return local_path(loc) is not None


def absolute(loc: PathOrLocation) -> Any:
    """A location that means the same from any working directory: a URL as given, a local
    path made absolute (symlinks resolved)."""
    return loc if is_url(loc) else like(loc, str(Path(loc).resolve()))


def join(loc: PathOrLocation, *parts: str) -> Any:
    """``loc/part/...``, with ``/`` for URLs and the OS separator for local paths; a Location
    for a Location (same options), else a string."""
    s = os.fspath(loc)
    if "://" not in s:
        return like(loc, os.path.join(s, *parts))
    return like(loc, "/".join([s.rstrip("/"), *parts]))


def parent(loc: PathOrLocation) -> Any:
    """The directory or prefix holding a location (a Location for a Location)."""
    s = os.fspath(loc)
    if "://" not in s:
        return like(loc, os.path.dirname(s))
    return like(loc, s.rstrip("/").rsplit("/", 1)[0])


def name(loc: PathOrLocation) -> str:
    """The last component of a location (a file or directory name)."""
    s = os.fspath(loc)
    return s.rstrip("/").rsplit("/", 1)[-1] if "://" in s else os.path.basename(s)


def normalize(loc: PathOrLocation) -> str | Location:
    """A Location as it is, any other path-like as its string (``os.fspath`` would drop a
    Location's options)."""
    return loc if isinstance(loc, Location) else os.fspath(loc)


def urls_only(value: Any) -> Any:
    """``value`` with every Location in it (in dicts, lists and tuples) replaced by its URL:
    what may be returned to Prefect, written to a file or recorded."""
    if isinstance(value, Location):
        return value.url
    if isinstance(value, dict):
        return {k: urls_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(urls_only(v) for v in value)
    return value
