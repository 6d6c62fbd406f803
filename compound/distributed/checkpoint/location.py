"""Where a checkpoint lives: a local folder or any ``pyarrow.fs`` URI, query parameters included.

``s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http&region=us-east-1``
is how pyarrow addresses an S3-compatible store (MinIO, Ceph, a test
server): the parameters follow the path, so a folder is added to the path
and never after the query string (``join``). ``open_location`` turns one
into a filesystem and a path; ``check`` opens it before anything starts, so
a URI that cannot be used is one line naming it, not an actor's traceback.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.fs as pafs

from compound.curation.errors import CurationError


def join(location: str, name: str) -> str:
    """``location`` with ``/name`` added to its path; a URI's query string stays at the end.

    >>> join("s3://bucket/runs?region=us-east-1&scheme=http", "run-1")
    's3://bucket/runs/run-1?region=us-east-1&scheme=http'
    >>> join("/data/ckpt/", "run-1")
    '/data/ckpt/run-1'
    """
    base, sep, query = location.partition("?") if "://" in location else (location, "", "")
    return f"{base.rstrip('/')}/{name}{sep}{query}"


def open_location(location: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path within it of ``location`` (a local folder or a ``pyarrow.fs`` URI)."""
    if "://" not in location:
        return pafs.LocalFileSystem(), location
    return pafs.FileSystem.from_uri(location)


def check(location: str) -> None:
    """Open ``location`` and write, read and delete a small file there; a ``CurationError`` of one line if that fails."""
    shown = location.split("?", 1)[0]
    try:
        fs, root = open_location(location)
        fs.create_dir(root, recursive=True)
        probe = f"{root.rstrip('/')}/.probe-{uuid.uuid4().hex}"
        with fs.open_output_stream(probe) as out:
            out.write(b"compound")
        with fs.open_input_stream(probe) as f:
            f.read()
        fs.delete_file(probe)
    except (OSError, ValueError, pa.ArrowException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CurationError(
            f"distributed.checkpoint_uri {shown!r} cannot be used ({type(exc).__name__}: {first[:300]}); give a folder or a "
            "pyarrow.fs URI every node can reach, e.g. s3://bucket/path?endpoint_override=host:9000&scheme=http&region=us-east-1"
        ) from None
