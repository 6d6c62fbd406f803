"""What ``compound store`` reads and where it writes: a store to share, and the run or config it goes into.

A **source** is a store file (``RUN_DIR/stores/final.parquet``,
``stores/trial-<i>.parquet``, an imported store) or a run directory (its
``stores/final.parquet``). It is untrusted: it is read through
``compound.runs.safe_read``, and of the run's ``config.yaml`` beside it
only the environment's id and parameters are used (never its plugins).

A **destination** is a config file you wrote (its folder receives
``imports/``; its plugins are yours and are loaded) or a run directory
(``RUN_DIR/imports/``; its plugins only with ``trust_config``). The
destination's environment, with the destination's parameters, is where
shared trajectories are re-verified: they must succeed in the environment
they will be used in.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from compound.config import ConfigError, RunConfig, load_config
from compound.runs.safe_parquet import read_trajectory_file
from compound.runs.safe_read import InputError
from compound.share.provenance import imported_header, read_imported
from compound.types import Trajectory


@dataclass(frozen=True)
class Source:
    path: Path  # the store file
    name: str  # the source run's directory name, or the file's stem
    trajectories: list[Trajectory]
    config: RunConfig | None = None  # the source run's, if it sits in one (env id and params only are used)
    digest: str = ""

    @property
    def record(self) -> dict[str, Any]:
        return {"path": str(self.path.resolve()), "name": self.name, "sha256": self.digest}


@dataclass(frozen=True)
class Destination:
    folder: Path  # where imports/ goes
    cfg: RunConfig
    existing: list[Trajectory] = field(default_factory=list)  # successes already there (its stores, earlier imports)

    @property
    def imports(self) -> Path:
        return self.folder / "imports"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_source(path: str | Path) -> Source:
    """The store at ``path`` (a run directory means its final store); an imported store gives its verified rows."""
    path = Path(path)
    if path.is_dir():
        final = path / "stores" / "final.parquet"
        if not final.is_file():
            raise InputError(f"{path}: no stores/final.parquet (the run did not finish); pass a store file, "
                             f"e.g. {path / 'stores' / 'trial-0.parquet'}")
        path = final
    if not path.is_file():
        raise InputError(f"{path}: no such store; pass a run directory or a .parquet store file")
    run_dir = path.parent.parent if path.parent.name == "stores" else None
    config = None
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        config = load_config(run_dir / "config.yaml")  # safe YAML; plugins are never loaded from it
    header = imported_header(path)
    if header is not None:  # another's import: its verdicts are claims, its trajectories are re-verified like any
        rows, _ = read_imported(path, require_seal=False)
        trajectories = [r.trajectory for r in rows]
        name = str(header.get("source", {}).get("name") or path.stem)
    else:
        trajectories = read_trajectory_file(path)
        name = run_dir.resolve().name if run_dir is not None else path.stem
    return Source(path, name, trajectories, config, file_digest(path))


def open_destination(path: str | Path, *, trust_config: bool = False) -> Destination:
    """A config file or a run directory to import into, with the successes it already holds."""
    path = Path(path)
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"--into {path}: no config.yaml there; pass a run directory or a config file")
        cfg, folder = load_config(path / "config.yaml"), path
        if cfg.env.plugins and not trust_config:
            raise ConfigError(f"--into {path}: its config.yaml imports plugin code ({', '.join(cfg.env.plugins)}); "
                              "if you trust the run directory, pass --trust-config")
        existing = [t for store in sorted((path / "stores").glob("*.parquet")) for t in read_trajectory_file(store) if t.success]
    elif path.is_file():
        cfg, folder, existing = load_config(path), path.parent, []
    else:
        raise ConfigError(f"--into {path}: no such run directory or config file")
    for imported in sorted((folder / "imports").glob("*.parquet")):
        rows, _ = read_imported(imported)
        existing.extend(r.trajectory for r in rows if r.verdict == "verified")
    return Destination(folder, cfg, existing)


@contextmanager
def environment(cfg: RunConfig, *, load_plugins_of_config: bool = True) -> Iterator[Any]:
    """``cfg``'s environment, made with its parameters (its plugins loaded only when allowed), closed after."""
    from compound.envs import load_plugins, make

    if load_plugins_of_config and cfg.env.plugins:
        load_plugins(cfg.env.plugins, cfg.env.plugin_dirs)
    env = make(cfg.env.id, **cfg.env.params)
    try:
        yield env
    finally:
        env.close()
