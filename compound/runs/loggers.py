"""Optional experiment loggers: metrics.jsonl's records, as scalars, to Weights & Biases or TensorBoard.

Named in ``distributed.loggers``; never required. Each record the driver
writes to metrics.jsonl is flattened by ``compound.runs.observe.scalars`` and
sent to every logger named, so the figures are the file's own. A logger
named whose package is missing is a one-line ``ConfigError`` before Ray
starts (``check_loggers``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable, Sequence

from compound.config import ConfigError
from compound.runs.observe import record_step, scalars

#: Per logger, the packages that provide it (any one will do) and how to get one.
PACKAGES = {
    "wandb": (("wandb",), "pip install wandb"),
    "tensorboard": (("tensorboard", "tensorboardX"), "pip install tensorboard (or tensorboardX)"),
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_loggers(names: Sequence[str], installed: Callable[[str], bool] | None = None) -> None:
    """Raise a one-line ``ConfigError`` for a logger named in ``distributed.loggers`` whose package is missing."""
    installed = installed or _installed
    for name in names:
        modules, fix = PACKAGES[name]
        if not any(installed(m) for m in modules):
            raise ConfigError(
                f"distributed.loggers: {name!r} is named but {' or '.join(modules)} is not installed; "
                f"{fix}, or remove {name!r} from distributed.loggers"
            )


class _Wandb:
    def __init__(self, run_dir: Path, name: str, config: dict[str, Any]) -> None:
        import wandb

        self.run = wandb.init(project="compound", name=name, dir=str(run_dir), config=config)

    def log(self, values: dict[str, float], step: int, index: int) -> None:
        self.run.log(values, step=index)  # W&B wants a step that only grows: the record's index

    def close(self) -> None:
        self.run.finish()


class _TensorBoard:
    def __init__(self, run_dir: Path, name: str, config: dict[str, Any]) -> None:
        if _installed("tensorboard"):
            from torch.utils.tensorboard import SummaryWriter
        else:
            from tensorboardX import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, values: dict[str, float], step: int, index: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, global_step=step)  # a segment's figures at its segment

    def close(self) -> None:
        self.writer.close()


_MAKERS = {"wandb": _Wandb, "tensorboard": _TensorBoard}


class Loggers:
    """The loggers ``distributed.loggers`` names, fed with metrics.jsonl's records."""

    def __init__(self, names: Sequence[str], run_dir: Path, name: str, config: dict[str, Any]) -> None:
        check_loggers(names)
        self.loggers = [_MAKERS[n](run_dir, name, config) for n in names]
        self.index = 0

    def log(self, record: dict[str, Any]) -> None:
        if not self.loggers:
            return
        values = scalars(record)
        if values:
            for logger in self.loggers:
                logger.log(values, record_step(record, self.index), self.index)
            self.index += 1

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
        self.loggers = []
