"""Where a shared trajectory came from, and the imported-store file that keeps it.

An imported store is one Parquet file: the trajectory columns
(``compound.trajectory_arrow.TRAJECTORY_SCHEMA``) plus three of its own, per row:

- ``share_verdict``: ``verified`` (re-verified and new: retrievable),
  ``duplicate`` (verified, but it repeats a trajectory already there) or
  ``quarantined`` (not verified: kept for inspection, never retrieved);
- ``share_reason``: why, in one line;
- ``share_provenance``: JSON: the source (its path and name, the
  trajectory's id there, its model), the environment it was verified in
  (id, parameters and version), compound's version, and when.

The schema metadata (``compound.share``) says the file is one, and
``<file>.seal`` (an HMAC of the file under a key only this machine's user
can read) says the import was made here and the file is unchanged since:
a run seeds only from sealed files, so an "imported store" handed over
with forged verdicts is refused until it is imported (re-verified) here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from compound import __version__
from compound.runs.files import atomic_write_bytes
from compound.runs.safe_parquet import iter_trajectory_batches, read_trajectory_file
from compound.runs.safe_read import InputError
from compound.types import Trajectory
from compound.trajectory_arrow import to_arrow

META_KEY = b"compound.share"
FORMAT = "imported/1"
VERDICTS = ("verified", "duplicate", "quarantined")
SHARE_SCHEMA = pa.schema([("share_verdict", pa.string()), ("share_reason", pa.string()), ("share_provenance", pa.string())])

#: The distribution whose version an environment's verdicts depend on, by environment id prefix.
ENV_PACKAGES = {"twx/": "textworld-express", "sciworld/": "scienceworld", "alfworld/": "alfworld", "sql/": "intercode-bench"}


def env_version(env_id: str) -> str:
    """``<distribution> <version>`` of what the environment runs on (compound itself for its own suites).

    >>> env_version("wordcraft") == f"compound {__version__}"
    True
    """
    for prefix, dist in ENV_PACKAGES.items():
        if env_id.startswith(prefix):
            try:
                return f"{dist} {metadata.version(dist)}; compound {__version__}"
            except metadata.PackageNotFoundError:
                return f"{dist} (not installed); compound {__version__}"
    return f"compound {__version__}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class SharedRow:
    """One row of an imported store."""

    trajectory: Trajectory
    verdict: str
    reason: str
    provenance: Mapping[str, Any]


def provenance(source: Mapping[str, Any], t: Trajectory, env_id: str, env_params: Mapping[str, Any], method: str,
               when: str) -> dict[str, Any]:
    """The provenance record of one trajectory from ``source`` (``path``, ``name``), verified ``when``."""
    return {
        "source": dict(source), "source_id": t.id, "model": t.model, "env_id": env_id, "env_params": dict(env_params),
        "env_version": env_version(env_id), "compound_version": __version__, "verified_at": when, "method": method,
    }


def write_imported(path: Path, rows: Sequence[SharedRow], header: Mapping[str, Any]) -> Path:
    """The rows as an imported store at ``path`` (written new and renamed into place)."""
    table = to_arrow([r.trajectory for r in rows])
    table = table.append_column("share_verdict", pa.array([r.verdict for r in rows], pa.string()))
    table = table.append_column("share_reason", pa.array([r.reason for r in rows], pa.string()))
    table = table.append_column("share_provenance", pa.array([json.dumps(r.provenance, default=str) for r in rows], pa.string()))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           META_KEY: json.dumps({"format": FORMAT, **header}, default=str).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path


def imported_header(path: Path) -> dict[str, Any] | None:
    """The ``compound.share`` metadata of ``path`` (None: not an imported store)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError, ValueError):
        return None
    raw = meta.get(META_KEY)
    try:
        header = json.loads(raw) if raw and len(raw) < (1 << 20) else None
    except ValueError:
        return None
    return header if isinstance(header, dict) and header.get("format") == FORMAT else None


def read_imported(path: str | Path, *, require_seal: bool = True) -> tuple[list[SharedRow], dict[str, Any]]:
    """The rows of an imported store made here (``require_seal``) and its header; anything else is an
    ``InputError`` saying how to make one."""
    path = Path(path)
    header = imported_header(path) if path.is_file() else None
    if header is None:
        raise InputError(f"{path} is not an imported store (no verdicts in it); import it first: "
                         f"compound store import {path} --into CONFIG")
    if require_seal and not sealed(path):
        raise InputError(f"{path} was not imported on this machine, or was changed since (its .seal does not match): "
                         f"its verdicts are claims; import it to re-verify: compound store import {path} --into CONFIG")
    trajectories = read_trajectory_file(path)
    extra = [row for batch in iter_trajectory_batches(path, SHARE_SCHEMA.names, expected=SHARE_SCHEMA) for row in batch.to_pylist()]
    rows = []
    for t, row in zip(trajectories, extra):
        verdict, reason = row["share_verdict"], row["share_reason"] or ""
        try:
            prov = json.loads(row["share_provenance"] or "{}")
        except (ValueError, RecursionError):
            prov = None
        if verdict not in VERDICTS or not isinstance(prov, dict):
            raise InputError(f"{path}: trajectory {t.id[:40]!r} has a verdict or provenance compound did not write; "
                             "the file is damaged or was edited: import the source again")
        rows.append(SharedRow(t, verdict, reason, prov))
    return rows, header


# ---------------------------------------------------------------- the seal of an import made here
def _key() -> bytes:
    """This machine's key for sealing imports (``<compound cache>/share.key``, made on first use, readable by its owner only)."""
    from compound.llm.model_files import cache_root

    path = cache_root() / "share.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        except FileExistsError:  # another process made it first
            pass
    return path.read_bytes()


def seal_path(path: Path) -> Path:
    return path.with_name(path.name + ".seal")


def _mac(path: Path) -> str:
    mac = hmac.new(_key(), digestmod=hashlib.sha256)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            mac.update(chunk)
    return mac.hexdigest()


def seal(path: Path) -> None:
    """Write ``<path>.seal``: an HMAC of the file under this machine's key, so a run seeds only from imports made here."""
    atomic_write_bytes(seal_path(path), (_mac(Path(path)) + "\n").encode())


def sealed(path: Path) -> bool:
    """Whether ``path`` is an imported store made on this machine and unchanged since."""
    mark = seal_path(Path(path))
    if not mark.is_file() or mark.stat().st_size > 256:
        return False
    return hmac.compare_digest(_mac(Path(path)), mark.read_text().strip())
