"""Reading what a stranger may have made: sizes first, and one line for anything malformed.

A run directory, a store or a lineage file passed between people is
untrusted input. Every reader of compound's own files goes through here or
through ``compound.runs.safe_parquet`` (trajectories: a file or a folder of
Parquet parts, sizes, schemas and decoded bytes checked before the data is
used):

- ``read_jsonl``: a JSON-lines file, bounded in size and per line; a line
  that does not parse is refused naming its number, except a last line cut
  short by a kill (no newline after it), which is not a record yet.
- ``lineage_problem``: what makes a ``lineage.jsonl`` record unusable.
- ``output_path``: where a command writes into a folder it did not make
  (``compound lineage``'s plot, ``library export``'s default output), no
  part of the path below that folder may be a symbolic link; the file is
  then written by ``compound.runs.files.atomic_write``, which replaces a
  path, never writes through it.
- ``links_under``: the symbolic links in a run directory (``--resume`` writes
  all over one, so it refuses one that holds any).

Every problem is an ``InputError``: one line naming the file, what is wrong
and what to do, which the CLI prints without a traceback.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.failures import RunError

MiB = 1 << 20


class InputError(RunError):
    """A file compound was asked to read is malformed or too large; the message names it and the fix."""


@dataclass(frozen=True)
class ReadLimits:
    """How much a reader accepts from one file (and, for a folder of Parquet parts, from all its parts together).

    ``decoded_ratio``: the data may decode to at most this many times the
    file's size (zstd and dictionary encoding of real trajectories stay far
    below it), but never less than ``min_decoded_bytes`` nor more than
    ``max_decoded_bytes``.
    """

    max_file_bytes: int = 16 << 30
    max_rows: int = 20_000_000
    min_decoded_bytes: int = 256 * MiB
    decoded_ratio: int = 200
    max_decoded_bytes: int = 64 << 30
    max_json_chars: int = 4 * MiB
    max_parts: int = 100_000
    max_jsonl_bytes: int = 4 << 30
    max_line_bytes: int = 64 * MiB
    batch_rows: int = 8192

    def decoded_budget(self, file_bytes: int) -> int:
        return min(self.max_decoded_bytes, max(self.min_decoded_bytes, self.decoded_ratio * file_bytes))


DEFAULT_LIMITS = ReadLimits()


def fail(path: Path | str, problem: str, fix: str) -> InputError:
    """The one-line error for ``path``: what is wrong with it, then what to do."""
    return InputError(f"{path}: {problem}; {fix}")


# ---------------------------------------------------------------- JSON lines
def read_jsonl(path: str | Path, limits: ReadLimits | None = None) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for every record of a JSON-lines file; a missing file has none.

    A line that is not a JSON object is refused naming its number; only a
    last line without its newline (a kill cut it short) is skipped.
    """
    path = Path(path)
    limits = limits or DEFAULT_LIMITS
    if not path.is_file():
        return []
    size = path.stat().st_size
    if size > limits.max_jsonl_bytes:
        raise fail(path, f"{size:,} bytes, more than the {limits.max_jsonl_bytes:,} compound reads", "is it the right file?")
    data = path.read_bytes()
    lines = data.split(b"\n")
    cut = not data.endswith(b"\n")
    out = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        last = number == len(lines)
        if len(raw) > limits.max_line_bytes:
            raise fail(path, f"line {number} is {len(raw):,} bytes (at most {limits.max_line_bytes:,})", "it is damaged or forged; do not use it")
        try:
            record = json.loads(raw)
        except RecursionError:
            raise fail(path, f"line {number} is JSON nested too deep", "it is damaged or forged; do not use it") from None
        except ValueError:
            if last and cut:
                continue  # cut short by a kill: not a record
            raise fail(path, f"line {number} is not JSON", "remove the line (or restore the file) and run again") from None
        if not isinstance(record, dict):
            raise fail(path, f"line {number} is a JSON {type(record).__name__}, not an object", "remove the line and run again")
        out.append((number, record))
    return out


def plain_text(text: str, limit: int = 80) -> str:
    """``text`` reduced to letters, digits and ``. _ -`` (others become ``_``), at most ``limit`` characters:
    safe inside a docstring or a comment of generated code.

    >>> plain_text('run"' + '""; import os')
    'run_____import_os'
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:limit]


# ---------------------------------------------------------------- writing into a folder one did not make
def links_under(root: Path, *, limit: int = 200_000) -> list[Path]:
    """Symbolic links inside ``root`` (not following them), up to the first 10; refuses a tree past ``limit`` entries."""
    found: list[Path] = []
    seen = 0
    stack = [Path(root)]
    while stack and len(found) < 10:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > limit:
                raise fail(root, f"holds more than {limit:,} files", "is it a run directory?")
            if entry.is_symlink():
                found.append(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
    return found


def output_path(root: Path, relative: str | Path, fix: str) -> Path:
    """``root / relative``, refused when a part of it below ``root`` is a symbolic link (which a write would follow)."""
    root = Path(root)
    target = root
    for part in Path(relative).parts:
        target = target / part
        if target.is_symlink():
            raise InputError(f"{target} is a symbolic link (to {os.readlink(target)}); compound does not write through "
                             f"links in a folder it reads; {fix}")
    return target


# ---------------------------------------------------------------- lineage records
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _trial_ok(value: Any, trials: int | None) -> bool:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return _is_int(value) and value >= 0 and (trials is None or value < trials)


def _ids_by_trial(value: Any, trials: int | None, *, mapped: bool = False) -> bool:
    """Trial numbers to lists of ids; with ``mapped``, also to ``{id: why}`` (``collapsed``: the kept id, or the rule)."""
    def ids(v: Any) -> bool:
        if mapped and isinstance(v, dict):
            return all(isinstance(i, str) and isinstance(why, str) for i, why in v.items())
        return isinstance(v, list) and all(isinstance(i, str) for i in v)

    return isinstance(value, dict) and all(_trial_ok(k, trials) and ids(v) for k, v in value.items())


def lineage_problem(record: dict[str, Any], trials: int | None = None) -> str | None:
    """What makes a ``lineage.jsonl`` record unusable by replay and ``compound lineage`` (None: nothing).

    Checked are the fields they read, where present: a segment number, the
    segment's task keys, trial indices (below ``trials`` when given), id
    lists, selection scores and copies.

    >>> lineage_problem({"event": "paper", "segment": 0, "exploit": [{"source": 1, "target": 0}]}, trials=2)
    >>> lineage_problem({"event": "paper", "segment": 0, "exploit": [{"source": 5, "target": 0}]}, trials=2)
    "'exploit' must be a list of {source, target} trial numbers below 2"
    """
    event = record.get("event")
    if not isinstance(event, str):
        return "'event' must be a string"
    segment = record.get("segment")
    if segment is not None and not (_is_int(segment) and segment >= 0):
        return "'segment' must be a whole number >= 0"
    below = f" below {trials}" if trials is not None else ""
    if event == "segment_end":
        tasks = record.get("tasks")
        if not (isinstance(tasks, list) and all(isinstance(t, str) for t in tasks)):
            return "'tasks' must be a list of task keys"
        if "collapsed" in record and not _ids_by_trial(record["collapsed"], trials, mapped=True):
            return f"'collapsed' must map trial numbers{below} to {{id: kept id}} or lists of ids"
        sizes = record.get("store_sizes")
        if sizes is not None and not (isinstance(sizes, list) and all(_is_int(s) for s in sizes)):
            return "'store_sizes' must be a list of whole numbers"
    if "evict" in record and not _ids_by_trial(record["evict"], trials):
        return f"'evict' must map trial numbers{below} to lists of ids"
    if "exploit" in record:
        pairs = record["exploit"]
        if not (isinstance(pairs, list) and all(
                isinstance(p, dict) and _trial_ok(p.get("source"), trials) and _trial_ok(p.get("target"), trials) for p in pairs)):
            return f"'exploit' must be a list of {{source, target}} trial numbers{below}"
    if "scores" in record:
        scores = record["scores"]
        if not (isinstance(scores, list) and all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores)):
            return "'scores' must be a list of numbers"
    if "explored" in record:
        explored = record["explored"]
        if not (isinstance(explored, dict) and all(
                isinstance(changes, dict) and all(isinstance(c, dict) and {"from", "to", "how"} <= set(c) for c in changes.values())
                for changes in explored.values())):
            return "'explored' must map trials to {name: {from, to, how}}"
    return None
