"""What a run leaves and reads back: the run directory, its report and plots, lineage, seeds, replay, resume.

No Ray: everything here reads and writes files, so ``compound replay``,
``compound lineage`` and the multi-seed summary run on any machine.
"""

from compound.runs.lineage import lineage_table, plot_lineage
from compound.runs.loggers import Loggers, check_loggers
from compound.runs.metadata import describe_machine, describe_precision, machine, start_record
from compound.runs.observe import PROGRESS_EVERY_S, Tally, record_step, scalars, staleness_summary
from compound.runs.plots import plot_staleness, plot_success, plot_throughput
from compound.runs.replay import SELECTION_EVENTS, ReplayResult, compare, read_lineage, replay
from compound.runs.report import PHASE_LABELS, engine_line, write_report
from compound.runs.results import held_out_counts, results_record, task_comparison
from compound.runs.resume import config_changes, diff_text, finished, last_summary, refused_changes
from compound.runs.rundir import Outcome, RunDir, held_out_outcomes, read_trajectories, write_trajectories
from compound.runs.seed_summary import plot_seeds, seeds_markdown, summarize_seeds
from compound.runs.stats import Interval, Paired, mean_interval, paired_difference, pairs_to_exclude_zero, welch_interval

__all__ = [
    "Interval", "Loggers", "Outcome", "PHASE_LABELS", "PROGRESS_EVERY_S", "Paired", "ReplayResult", "RunDir",
    "SELECTION_EVENTS", "Tally", "check_loggers", "compare", "config_changes", "describe_machine",
    "describe_precision", "diff_text", "engine_line", "finished", "held_out_counts", "held_out_outcomes",
    "last_summary", "lineage_table", "machine", "mean_interval", "paired_difference", "pairs_to_exclude_zero",
    "plot_lineage", "plot_seeds", "plot_staleness", "plot_success", "plot_throughput", "read_lineage",
    "read_trajectories", "record_step", "refused_changes", "replay", "results_record", "scalars", "seeds_markdown",
    "staleness_summary", "start_record", "summarize_seeds", "task_comparison", "welch_interval", "write_report",
    "write_trajectories",
]
