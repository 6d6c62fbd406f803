"""Starting and joining Ray: local by default, a cluster when RAY_ADDRESS (or the config) names one."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import ray
from ray.exceptions import RayActorError

from compound.config import DistributedConfig
from compound.failures import ClusterUnreachable

log = logging.getLogger(__name__)


# Settings every actor process gets: offline models, no tokenizer thread pools
# fighting the engine for cores, no per-actor progress bars in the driver's log.
ACTOR_ENV_VARS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    # No OMP_WAIT_POLICY: OpenMP's default (spin briefly, then sleep; less spin when
    # oversubscribed) suits the engine, whose threads meet at a barrier after every op.
    # PASSIVE (sleep at once) made its threads pay a wake-up per op: replayed on 2 cores,
    # 3.95-4.49 ms per prefilled token with it, 3.33-3.66 without (docs/engines.md).
    # A value set in the environment that starts Ray is inherited as usual.
}


def quiet_actor_logging() -> None:
    """Called in each actor: library chatter (py4j's shutdown notes, weight-loading bars) is not run output."""
    for name in ("py4j", "scienceworld", "transformers", "httpx", "urllib3", "filelock"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def local_worker_priority() -> None:
    """A local Ray's actors run at the driver's priority, not Ray's default nice 15.

    Ray lowers its worker processes to nice 15 so a node's own daemons stay
    responsive; on a machine that also runs other work (a laptop, a shared CI
    runner) that leaves the actors, which do all of a run's work, about 3% of
    a core each against any normal process, and a 1-minute test suite took
    over 10. Set before ``ray.init`` starts the raylet, which reads it;
    ``RAY_worker_niceness`` set by the user wins.
    """
    os.environ.setdefault("RAY_worker_niceness", "0")


def address_endpoint(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray address to probe, or None for one Ray resolves itself (``auto``, ``local``).

    >>> address_endpoint("10.0.0.5:6379"), address_endpoint("ray://head:10001"), address_endpoint("auto")
    (('10.0.0.5', 6379), ('head', 10001), None)
    """
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


def wait_reachable(address: str, timeout_s: float) -> None:
    """Fail within ``timeout_s`` when nothing listens at ``address``.

    ``ray.init`` on an address where nothing answers retries for many
    minutes (823 s measured, with 42 warnings) before a traceback; a TCP
    connect tells the same in seconds and names what to fix.
    """
    endpoint = address_endpoint(address)
    if endpoint is None:
        return
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while True:
        try:
            with socket.create_connection(endpoint, timeout=min(5.0, timeout_s)):
                return
        except OSError as exc:
            last = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    raise ClusterUnreachable(
        f"no Ray cluster answered at {address} within {timeout_s:.0f} s ({last.strerror if last and last.strerror else last}); "
        "check distributed.address / RAY_ADDRESS and that `ray start --head` runs there, "
        "or raise distributed.connect_timeout_s"
    )


TOKEN_AUTH_NOTICE = "Token authentication is enabled for this Ray cluster"


class _TokenAuthNotice(logging.Filter):
    """Drops Ray's notice that token authentication is on (its default for a new local cluster).

    Token authentication is what compound wants for the Ray it starts, and a
    cluster that refuses the run's connection is explained by compound itself
    (``_join_failure``), so the notice, which says how to turn it off, is not
    run output. Ray's warning that authentication is *off* is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TOKEN_AUTH_NOTICE)


def quiet_token_auth_notice() -> None:
    """Install ``_TokenAuthNotice`` on Ray's authentication logger (once)."""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _TokenAuthNotice) for f in logger.filters):
        logger.addFilter(_TokenAuthNotice())


def init_ray(cfg: DistributedConfig, *, runtime_env: dict | None = None) -> str:
    """Join the cluster named by the config or RAY_ADDRESS, else start a local Ray of the run's own.

    A plain ``ray.init()`` joins whatever cluster ``ray start`` left on the
    machine; without an address (or with ``local``) the run starts its own
    local Ray instead (``address="local"``), so the summary's "local Ray"
    is true and ``distributed.num_cpus`` applies, and with it the dashboard
    and the metrics port (``start_options``). The run's actors live in
    the ``compound`` namespace. Returns a short description of where the
    run executes, with the dashboard's URL when there is one (for the
    summary), and logs the URL. Idempotent: a Ray already initialised
    in this process is reused (tests share one local cluster).
    """
    if ray.is_initialized():
        return with_dashboard("existing Ray session", session_dashboard_url())
    quiet_token_auth_notice()
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict = dict(
        namespace=NAMESPACE,
        logging_level=logging.WARNING,
        log_to_driver=True,
        configure_logging=True,
    )
    env_vars = {**ACTOR_ENV_VARS, **(runtime_env or {}).get("env_vars", {})}
    kwargs["runtime_env"] = {**(runtime_env or {}), "env_vars": env_vars}
    if address and address != "local":
        wait_reachable(address, cfg.connect_timeout_s)
        try:  # the cluster's dashboard and metrics port are its own: nothing of start_options applies
            context = ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError) as exc:
            raise ClusterUnreachable(_join_failure(address, exc)) from None
        return with_dashboard(f"Ray cluster at {address}", context.dashboard_url)
    local_worker_priority()
    context = ray.init(address="local", num_cpus=cfg.num_cpus, **kwargs, **start_options(cfg))
    return with_dashboard(f"local Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs)", context.dashboard_url)


def start_options(cfg: DistributedConfig) -> dict:
    """``ray.init`` options only a Ray the run starts takes: the dashboard and the metrics export port.

    ``include_dashboard=None`` is Ray's own rule: start the dashboard when
    ``ray[default]`` is installed (a minimal Ray has none to start).
    """
    options: dict = {"include_dashboard": None if cfg.dashboard else False}
    if cfg.metrics_export_port:
        options["_metrics_export_port"] = cfg.metrics_export_port
    return options


def with_dashboard(where: str, dashboard_url: str | None) -> str:
    """``where``, plus the dashboard's URL when there is one; the URL is logged too, for the person watching.

    >>> with_dashboard("local Ray (2 CPUs)", "127.0.0.1:8265"), with_dashboard("local Ray (2 CPUs)", "")
    ('local Ray (2 CPUs), dashboard http://127.0.0.1:8265', 'local Ray (2 CPUs)')
    """
    if not dashboard_url:
        return where
    url = dashboard_url if "://" in dashboard_url else f"http://{dashboard_url}"
    log.info("Ray dashboard at %s (the run's metrics are named compound_*)", url)
    return f"{where}, dashboard {url}"


def session_dashboard_url() -> str:
    """The dashboard URL of the Ray this process already joined ("" when it has none)."""
    try:
        return ray._private.worker._global_node.webui_url or ""  # what ray.init's context reads
    except AttributeError:  # a client connection (ray://) has no local node
        return ""


def metrics_endpoints() -> list[str]:
    """``http://host:port/metrics``: each live node's Prometheus endpoint, where the run's ``ray_compound_*`` metrics are."""
    return [
        f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
        for node in ray.nodes()
        if node.get("Alive") and node.get("MetricsExportPort")
    ]


def working_dir_copy_warning(run_dir: Path) -> str | None:
    """A warning when ``run_dir`` lies inside Ray's temporary copy of a job's ``working_dir``, else None.

    ``ray job submit --working-dir D -- compound run --out relrun`` runs in
    ``<ray temp dir>/runtime_resources/working_dir_files/_ray_pkg_<hash>/``, a
    copy Ray deletes when the cluster stops, so a relative ``--out`` lands there.

    >>> working_dir_copy_warning(Path("/tmp/ray/session_1/runtime_resources/working_dir_files/_ray_pkg_ab/out")) is not None
    True
    >>> working_dir_copy_warning(Path("/shared/runs/out")) is None
    True
    """
    parts = run_dir.parts
    inside = any(a == "runtime_resources" and b == "working_dir_files" for a, b in zip(parts, parts[1:]))
    if not inside:
        return None
    return ("the run directory is inside Ray's temporary copy of the job's working_dir, which Ray deletes with its "
            "session; pass an absolute --out on a disk that outlives the job (the driver's node, or one all nodes "
            "share) and set distributed.checkpoint_uri to storage every node reaches")


#: The Ray namespace of every run's actors, so the dashboard and ``ray list actors`` tell them apart.
NAMESPACE = "compound"


def _join_failure(address: str, exc: BaseException, auth_mode: str | None = None) -> str:
    """One line for a cluster that answered but would not let the run join; token auth is the usual cause.

    Ray 2.60 logs a refused token ("InvalidAuthToken", from its C++ client)
    and raises ``ConnectionError: Failed to connect to Ray cluster at ...``,
    whose text need not mention auth; so a client without
    ``RAY_AUTH_MODE=token`` is told about token auth whatever the text says
    (the address answered, so a cluster is there). ``auth_mode``: this
    client's RAY_AUTH_MODE (default: the environment's).

    >>> refused = ConnectionError("Failed to connect to Ray cluster at h:1")
    >>> "RAY_AUTH_MODE=token" in _join_failure("h:1", refused, auth_mode="")
    True
    >>> _join_failure("h:1", refused, auth_mode="token")
    'could not join the Ray cluster at h:1: Failed to connect to Ray cluster at h:1; check distributed.address / RAY_ADDRESS'
    """
    chain, cause = [], exc
    while cause is not None and len(chain) < 5:
        chain.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    text = " ".join(chain).lower()
    mode = os.environ.get("RAY_AUTH_MODE", "") if auth_mode is None else auth_mode
    if "auth" in text or "token" in text or mode.lower() != "token":
        return (
            f"the Ray cluster at {address} answered but refused the connection; it most likely uses token authentication. "
            "Set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, or the token file `ray start` wrote) "
            "in this shell, or start the cluster with RAY_AUTH_MODE=disabled; `compound doctor` checks it"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"could not join the Ray cluster at {address}: {first[:300]}; check distributed.address / RAY_ADDRESS"


def probe_cluster(address: str) -> tuple[bool, str]:
    """Join ``address`` and leave again: (True, what was found) or (False, why it could not join).

    ``compound doctor`` asks this; it takes a few seconds.
    """
    try:
        wait_reachable(address, 5.0)
    except ClusterUnreachable as exc:
        return False, str(exc)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError) as exc:
        return False, _join_failure(address, exc)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
    finally:
        ray.shutdown()
    auth = os.environ.get("RAY_AUTH_MODE", "Ray's default")
    return True, f"joined {address} ({gpus} GPUs; auth mode: {auth})"


ActorDied = RayActorError
"""What a call to an actor of the run raises when that actor died (Ray's ``RayActorError``)."""
