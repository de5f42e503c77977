"""Dot-free, collision-free sample keys.

webdataset splits a member name at its first dot into key and extension, so keys must
never contain one. A key is a readable slug of the original name plus a short hash of
the full (source, name) pair, so two names that slug the same still get distinct keys.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from common.errors import FormatError

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_SLUG = 60


def make_key(source: str, name: str) -> str:
    """Builds the shard key of an input.

    Args:
        source (str): dataset or engine name; part of the hash, so keys differ across sources.
        name (str): the input's own name (file path, image id, ...), any characters.

    Returns:
        str: ``<slug>-<12 hex>``, only [A-Za-z0-9_-].
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE.sub("_", ascii_name).strip("_-")[:MAX_SLUG] or "x"
    digest = hashlib.sha1(f"{source}\x00{name}".encode()).hexdigest()[:12]
    return f"{slug}-{digest}"


def check_key(key: str) -> None:
    """Raises FormatError if a key could not round-trip through webdataset."""
    if not key or "." in key or "/" in key or _UNSAFE.search(key):
        raise FormatError(f"invalid key {key!r}: keys use only [A-Za-z0-9_-], no dots")


def target_id(key: str, target_index: int) -> str:
    """The stable id of one target: ``<sample key>_<target index>``, dot-free.

    Evaluation keys saved predictions by it (``DIR/<target id>.png``). The index is the
    target's position in the sample's ``targets`` list (the manifest's ``target_index``).
    Keys hold no dot and the index only digits, so splitting at the last ``_`` recovers
    (key, index): two targets never share an id.
    """
    if isinstance(target_index, bool) or not isinstance(target_index, int) or target_index < 0:
        raise ValueError(f"target index must be a non-negative int, got {target_index!r}")
    check_key(key)
    return f"{key}_{target_index}"


def expression_id(key: str, target_index: int, text_index: int) -> str:
    """The id of one (target, text) pair: ``<target id>_<text index>``.

    Used when every text of a target is scored as its own expression (RefCOCO's protocol).
    Within one evaluation all ids are of one kind, so they stay unique.
    """
    if isinstance(text_index, bool) or not isinstance(text_index, int) or text_index < 0:
        raise ValueError(f"text index must be a non-negative int, got {text_index!r}")
    return f"{target_id(key, target_index)}_{text_index}"
