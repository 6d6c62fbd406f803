"""How every file of a run directory is written: whole or not at all, readable as the directory's other files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_if_opened(tmp: str) -> None:
    """``mkstemp`` makes 0600 files; give the file what ``open`` would (0666 less the umask), so others sharing
    a run directory can read it as they read the directory's other files."""
    os.chmod(tmp, 0o666 & ~_umask())


def atomic_write(path: Path, write: Callable[[str], None], *, temp_suffix: str = ".tmp") -> int:
    """Make ``path`` by ``write(tmp)`` into a temporary file beside it, then one rename; returns its size in bytes.

    A crash never leaves half a file; the rename replaces ``path`` itself,
    never a file a symlink there points to. The temporary file is hidden
    (a leading dot) and ends in ``temp_suffix`` (a writer that picks its
    format by the name, such as matplotlib, wants ``.png``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=temp_suffix)
    os.close(fd)
    try:
        write(tmp)
        _as_if_opened(tmp)
        size = os.path.getsize(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
