"""What a run records about itself: when and from what it started, which code ran it, on what machine.

The driver writes this as a ``start`` record into ``metrics.jsonl`` once its
engines are up (``start_record``), one per execution: a resumed run adds
another, and the report takes the start time and config path from the first
and the engine from the last. ``machine`` is asked in the engine's own process
too, since on a cluster the engine's node is the one whose hardware set the
speed. No Ray.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from compound import __version__

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the ``compound`` package


def machine(cpuinfo: str | None = None, gpus: list[str] | None = None) -> dict[str, Any]:
    """This machine: its CPU model, how many CPUs, whether it has AVX-512, and its GPUs (names; [] for none).

    ``cpuinfo`` and ``gpus`` are read from the machine when not given.

    >>> machine("model name\\t: AMD EPYC 7B13\\nflags\\t\\t: fpu sse avx2\\n", [])["cpu"], machine("flags : avx512f\\n", [])["avx512"]
    ('AMD EPYC 7B13', True)
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    model, flags = "", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cpus": os.cpu_count() or 0,
        "avx512": "avx512f" in flags,
        "gpus": gpu_names() if gpus is None else list(gpus),
    }


def gpu_names() -> list[str]:
    """The NVIDIA GPUs of this machine as ``nvidia-smi`` names them ([] without one, or without ``nvidia-smi``)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def source_commit(root: Path = _PACKAGE_ROOT) -> dict[str, Any] | None:
    """``{"commit", "local_changes"}`` of the git checkout compound runs from, or None (an installed wheel, no git)."""
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=20)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "local_changes": bool(status.stdout.strip()) if status.returncode == 0 else None}


def local_time(epoch_s: float) -> str:
    """An ISO 8601 time with the machine's UTC offset, to the second."""
    return datetime.fromtimestamp(epoch_s).astimezone().isoformat(timespec="seconds")


def start_record(
    cfg: Any, started: float, origin: Mapping[str, Any] | None, engine: Mapping[str, Any] | None, where: str
) -> dict[str, Any]:
    """The ``start`` record of one execution of a run.

    ``origin``: what the command line said (``config``: the config file's
    path, ``command``: the command), from ``compound.cli``; ``engine``: what
    the engines resolved and the machine they run on
    (``compound.distributed.engines.engine_facts``); ``where``: the Ray it runs on.
    """
    origin = dict(origin or {})
    return {
        "event": "start",
        "started": local_time(started),
        "seed": cfg.seed,
        "config": origin.get("config"),
        "command": origin.get("command"),
        "compound_version": __version__,
        "source": source_commit(),
        "engine": dict(engine or {}),
        "driver": machine(),
        "where": where,
    }


def describe_machine(machine: Mapping[str, Any] | None) -> str:
    """One phrase for a ``machine()`` record.

    >>> describe_machine({"cpu": "AMD EPYC", "cpus": 2, "avx512": False, "gpus": []})
    'AMD EPYC, 2 CPUs, no AVX-512, no GPU'
    >>> describe_machine({"cpu": "Intel Xeon", "cpus": 96, "avx512": True, "gpus": ["NVIDIA H100"] * 8})
    'Intel Xeon, 96 CPUs, AVX-512, 8 x NVIDIA H100'
    """
    if not machine:
        return "unknown"
    gpus = list(machine.get("gpus") or [])
    names = sorted(set(gpus))
    gpu = "no GPU" if not gpus else ", ".join(f"{gpus.count(n)} x {n}" if gpus.count(n) > 1 else n for n in names)
    return f"{machine.get('cpu') or 'unknown CPU'}, {machine.get('cpus', '?')} CPUs, {'AVX-512' if machine.get('avx512') else 'no AVX-512'}, {gpu}"


def describe_precision(facts: Mapping[str, Any]) -> str:
    """What the engine ran as, in words, with why where ``quantize: auto`` chose (``EngineHost.facts``).

    >>> describe_precision({"engine": "hf", "device": "cpu", "dtype": "float32", "quantize": "none",
    ...                     "quantize_requested": "auto", "int4_kernel": False, "threads": 2})
    'float32 weights, on the CPU, 2 threads (quantize auto chose none: the 4-bit kernel needs AVX-512, which this CPU lacks)'
    >>> describe_precision({"engine": "hf", "device": "cpu", "dtype": "float32", "quantize": "int4",
    ...                     "quantize_requested": "auto", "int4_kernel": True, "threads": 4})
    "4-bit linear layers (int4, the GGUF's own weights) and float32 elsewhere, on the CPU, 4 threads (quantize auto chose int4)"
    """
    engine = facts.get("engine")
    if engine == "scripted":
        return "a scripted client (no model)"
    if engine == "openai":
        return f"served by the endpoint at {facts.get('endpoint')}; its precision is the server's"
    if engine == "ct2":
        return f"CTranslate2 {facts.get('compute_type', '?')} on the CPU, {facts.get('threads', '?')} threads"
    if engine == "vllm":
        quantization = f", {facts['quantization']} quantization" if facts.get("quantization") else ""
        return f"{facts.get('dtype', '?')}{quantization} on GPUs, tensor parallel size {facts.get('tensor_parallel_size', 1)}"
    if "dtype" not in facts:
        return "not reported"
    device = "the CPU" if facts.get("device") == "cpu" else facts.get("device", "?")
    threads = f", {facts['threads']} threads" if facts.get("device") == "cpu" and facts.get("threads") else ""
    quantize, asked = facts.get("quantize", "none"), facts.get("quantize_requested", "")
    weights = {
        "int4": f"4-bit linear layers (int4, the GGUF's own weights) and {facts['dtype']} elsewhere",
        "int8": f"int8 linear layers and {facts['dtype']} elsewhere",
    }.get(quantize, f"{facts['dtype']} weights")
    why = ""
    if asked == "auto" and quantize == "none":
        if facts.get("device") != "cpu":
            why = ": the 4-bit path is for CPUs"
        elif facts["dtype"] != "float32":
            why = ": the 4-bit path is for float32"
        elif not facts.get("int4_kernel"):
            why = ": the 4-bit kernel needs AVX-512, which this CPU lacks"
        else:
            why = ": the model's weights are not exactly 4-bit"
    note = f" (quantize {asked}" + (f" chose {quantize}{why}" if asked == "auto" else "") + ")" if asked else ""
    return f"{weights}, on {device}{threads}{note}"
