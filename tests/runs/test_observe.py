"""metrics.jsonl's progress, throughput and staleness figures, their plots, and the optional loggers: pure parts, no Ray."""

from __future__ import annotations

import pytest

from compound.config import ConfigError, validate_config
from compound.runs.loggers import Loggers, check_loggers
from compound.curation.store import staleness
from compound.runs.observe import Tally, scalars, staleness_summary
from compound.runs.plots import plot_staleness, plot_throughput
from compound.types import Step, Trajectory


def trajectory(success: bool, steps: int, prompt: int = 10, generated: int = 2) -> Trajectory:
    return Trajectory("id", "toy", "1", "train", "g", "", "", tuple(Step("o", "a") for _ in range(steps)), success, True, False,
                      prompt_tokens=prompt, completion_tokens=generated)


def test_staleness_is_how_far_the_log_moved_and_none_without_an_example_set():
    assert [staleness(5, 5), staleness(2, 5), staleness(-1, 5)] == [0, 3, None]
    assert staleness(6, 5) == 0, "a version ahead of the log (a copy moved it) is not negative staleness"
    assert staleness_summary([3, 0, None, 0]) == {"episodes": 3, "mean": 1.0, "max": 3, "histogram": {"0": 2, "3": 1}}


def test_tally_windows_count_what_arrived_since_the_last_one():
    tally = Tally(started=100.0)
    tally.begin(110.0)  # actors took 10 s to start: not part of the first window
    tally.add(trajectory(True, 3))
    tally.add(trajectory(False, 1))
    first = tally.window(112.0)
    assert first["episodes"] == 2 and first["successes"] == 1 and first["steps"] == 4 and first["generated_tokens"] == 4
    assert first["window_s"] == 2.0 and first["episodes_per_s"] == 1.0 and first["elapsed_s"] == 12.0
    mark = tally.mark(112.0)
    tally.add(trajectory(True, 2))
    second = tally.window(116.0)
    assert second["episodes"] == 3 and second["episodes_per_s"] == 0.25 and second["steps_per_s"] == 0.5
    assert tally.since(mark, 116.0)["episodes"] == 1


def test_scalars_flatten_records_by_event_phase_and_trial():
    segment = {"event": "segment", "segment": 0, "tasks": [0, 3], "success": [1.0, 0.5], "store_sizes": [2, 1],
               "staleness": {"episodes": 2, "mean": 0.5, "histogram": {"0": 1, "1": 1}}, "params": [{"k": 3}], "time": 1.0}
    assert scalars(segment) == {
        "segment/success/0": 1.0, "segment/success/1": 0.5, "segment/store_sizes/0": 2.0, "segment/store_sizes/1": 1.0,
        "segment/staleness/episodes": 2.0, "segment/staleness/mean": 0.5,
        "segment/staleness/histogram/0": 1.0, "segment/staleness/histogram/1": 1.0, "segment/params/0/k": 3.0,
    }
    assert scalars({"event": "eval", "phase": "eval/trial", "trial": 2, "success": 0.5}) == {"eval/trial-2/success": 0.5}
    assert scalars({"event": "progress", "label": "train", "episodes": 4, "episodes_per_s": 0.5}) == {
        "progress/episodes": 4.0, "progress/episodes_per_s": 0.5}


def test_plots_are_drawn_from_the_records_and_skipped_without_them(tmp_path):
    progress = [{"event": "progress", "elapsed_s": t, "window_s": 10.0, "episodes": t, "steps": 3 * t, "generated_tokens": 9 * t}
                for t in (10.0, 20.0, 30.0)]
    segments = [{"event": "segment", "segment": i, "staleness": staleness_summary([0, i, i])} for i in range(3)]
    assert plot_throughput(tmp_path / "throughput.png", progress + segments)
    assert plot_staleness(tmp_path / "staleness.png", progress + segments)
    assert (tmp_path / "throughput.png").stat().st_size > 0 and (tmp_path / "staleness.png").stat().st_size > 0
    assert not plot_throughput(tmp_path / "none.png", segments) and not plot_staleness(tmp_path / "none.png", progress)
    assert not (tmp_path / "none.png").exists()


def test_a_logger_named_but_not_installed_is_one_line_naming_the_fix():
    with pytest.raises(ConfigError) as info:
        check_loggers(["tensorboard"], installed=lambda module: False)
    message = str(info.value)
    assert "\n" not in message and "'tensorboard' is named but tensorboard or tensorboardX is not installed" in message
    assert "pip install tensorboard" in message and "remove 'tensorboard' from distributed.loggers" in message
    check_loggers(["wandb"], installed=lambda module: module == "wandb")


def test_loggers_get_every_record_as_scalars_at_its_segment(monkeypatch, tmp_path):
    import compound.runs.loggers as loggers

    logged = []

    class Fake:
        def __init__(self, run_dir, name, config):
            self.name = name

        def log(self, values, step, index):
            logged.append((values, step, index))

        def close(self):
            logged.append("closed")

    monkeypatch.setitem(loggers._MAKERS, "wandb", Fake)
    monkeypatch.setattr(loggers, "_installed", lambda module: True)
    out = Loggers(["wandb"], tmp_path, "run", {})
    out.log({"event": "segment", "segment": 4, "success": [0.5]})
    out.log({"event": "summary", "episodes": 9})
    out.log({"event": "summary", "label": "text only"})  # nothing numeric: nothing sent, the index stays
    out.close()
    assert logged == [({"segment/success/0": 0.5}, 4, 0), ({"summary/episodes": 9.0}, 1, 1), "closed"]


def test_observability_config_keys():
    cfg = validate_config({})
    assert cfg.distributed.dashboard is True and cfg.distributed.metrics_export_port == 0 and cfg.distributed.loggers == []
    assert validate_config({"distributed": {"loggers": ["wandb", "tensorboard"]}}).distributed.loggers == ["wandb", "tensorboard"]
    with pytest.raises(ConfigError, match="distributed.loggers"):
        validate_config({"distributed": {"loggers": ["mlflow"]}})
    with pytest.raises(ConfigError, match="distributed.metrics_export_port"):
        validate_config({"distributed": {"metrics_export_port": 70000}})


def test_start_options_turn_the_dashboard_off_and_set_the_metrics_port():
    from compound.config import DistributedConfig
    from compound.distributed.runtime import start_options

    assert start_options(DistributedConfig()) == {"include_dashboard": None}  # Ray's rule: on when ray[default] is there
    assert start_options(DistributedConfig(dashboard=False, metrics_export_port=9100)) == {
        "include_dashboard": False, "_metrics_export_port": 9100}
