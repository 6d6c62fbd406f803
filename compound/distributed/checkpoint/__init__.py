"""The curator's checkpoint: an op log of every accepted call, and snapshots (rows written once, in segments) that let a restart skip most of it.

Written to any ``pyarrow.fs`` location (a folder, s3://, gs://), so a
curator restarted on another node recovers the same state. No Ray here.
"""

from compound.distributed.checkpoint.op_log import Op, OpLog
from compound.distributed.checkpoint.snapshot import CuratorState, Plan, plan, restore

__all__ = ["CuratorState", "Op", "OpLog", "Plan", "plan", "restore"]
