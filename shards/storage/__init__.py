"""Where datasets live: a local path or an fsspec URL, behind one small set of functions.

A *location* is a :class:`Location` (``location.py``: a path or URL with the fsspec options
that reach it, shown and written as its URL only) or a plain string / ``os.PathLike`` (a
location with no options). Local paths (relative or absolute, or ``file://...``) keep their
plain-file speed: they use ``open``/``os`` directly (and lock files: ``shards.locks``); URLs
of any fsspec filesystem (``s3://bucket/x`` through s3fs, ``gs://``, ``memory://``, ...) go
through fsspec. Everything in ``shards`` that reads or writes a split goes through these
functions (``files.py``); no other module branches on "local or remote", and no other module
handles fsspec options: they travel inside the Location.

Credentials and endpoints come from where each backend looks for them: for S3 the AWS
credential chain (environment, ``~/.aws``, instance roles) and ``AWS_ENDPOINT_URL`` for
S3-compatible stores; fsspec's configuration (``FSSPEC_<PROTOCOL>_<OPTION>`` variables,
``~/.config/fsspec``); and a Location's options, handed to fsspec as they are. Nothing here
writes any of them anywhere.

Visibility: a file appears under its final name complete or not at all. ``write_bytes``
writes a local temp name and renames it, or sends one PUT; ``publish`` renames a staged
local file into place, or uploads it (one PUT, or one multipart upload that the store
completes at the end). An interrupted upload leaves no object under the name (an
unfinished multipart upload is invisible; a bucket lifecycle rule reclaims its parts).

Readers that need a real local file (memory-mapped checkpoints) use ``local_copy``
(``local_cache.py``: a bounded cache of remote files).
"""

from shards.storage.files import (
    append_text,
    arrow_filesystem,
    copy,
    exists,
    file_version,
    filesystem,
    find,
    isfile,
    listdir,
    makedirs,
    open_read,
    publish,
    put_file,
    read_bytes,
    remove,
    same_filesystem,
    sha256,
    size,
    staged_output,
    staged_output_dir,
    staging_dir,
    write_bytes,
)
from shards.storage.local_cache import cache_dir, local_copy
from shards.storage.location import (
    Location,
    PathOrLocation,
    absolute,
    is_local,
    is_url,
    join,
    like,
    local_path,
    name,
    normalize,
    options_of,
    parent,
    urls_only,
)

__all__ = [
    "Location",
    "PathOrLocation",
    "absolute",
    "append_text",
    "arrow_filesystem",
    "cache_dir",
    "copy",
    "exists",
    "file_version",
    "filesystem",
    "find",
    "is_local",
    "is_url",
    "isfile",
    "join",
    "like",
    "listdir",
    "local_copy",
    "local_path",
    "makedirs",
    "name",
    "normalize",
    "open_read",
    "options_of",
    "parent",
    "publish",
    "put_file",
    "read_bytes",
    "remove",
    "same_filesystem",
    "sha256",
    "size",
    "staged_output",
    "staged_output_dir",
    "staging_dir",
    "urls_only",
    "write_bytes",
]
