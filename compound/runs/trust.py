"""What a run directory's saved configuration would do if honoured as it is: run code, or reach outside.

``compound run --resume RUN_DIR`` continues a run under ``RUN_DIR/config.yaml``,
and a run directory may come from someone else. A few settings there would
import code or hand over credentials: plugins to import, an endpoint to send
the API key to, a cluster to join, remote storage to write to with the
credentials of this machine, a logger that uses your account. ``--resume``
refuses a config that holds any of them unless the user says so
(``--trust-config``), or sets that key again themselves (``--set key=...``).
"""

from __future__ import annotations

from compound.config import RunConfig

TRUST_FLAG = "--trust-config"


def untrusted_settings(cfg: RunConfig) -> list[tuple[str, str]]:
    """``(key, what honouring it would do)`` for each setting of ``cfg`` that runs code or reaches outside.

    >>> from compound.config import validate_config
    >>> untrusted_settings(validate_config({}))
    []
    >>> untrusted_settings(validate_config({"llm": {"engine": "openai", "openai": {"base_url": "http://x:1/v1", "api_key_env": "AWS_SECRET"}}}))
    [('llm.openai.base_url', 'send $AWS_SECRET to http://x:1/v1')]
    """
    out = []
    if cfg.env.plugins:
        out.append(("env.plugins", f"import plugin code {', '.join(cfg.env.plugins)} (from {', '.join(cfg.env.plugin_dirs)})"))
    if cfg.llm.engine == "openai":
        out.append(("llm.openai.base_url", f"send ${cfg.llm.openai.api_key_env} to {cfg.llm.openai.base_url}"))
    if cfg.distributed.address:
        out.append(("distributed.address", f"join the Ray cluster at {cfg.distributed.address}"))
    if cfg.distributed.checkpoint_uri and "://" in cfg.distributed.checkpoint_uri:
        out.append(("distributed.checkpoint_uri", f"write to {cfg.distributed.checkpoint_uri} with this machine's credentials"))
    if "wandb" in cfg.distributed.loggers:
        out.append(("distributed.loggers", "log to Weights & Biases with your account"))
    return out


def refusal(run_dir: str, settings: list[tuple[str, str]]) -> str:
    """The one-line refusal naming what the saved config asks for and how to allow it."""
    asks = "; ".join(what for _, what in settings)
    keys = ", ".join(key for key, _ in settings)
    return (f"--resume {run_dir}: its config.yaml would {asks}. A run directory may come from anyone, so compound "
            f"honours none of that by default: if you trust {run_dir}, resume with {TRUST_FLAG}, or set {keys} yourself "
            f"with --set")
