"""Every file in clusters/ is parsed and checked for what its kind needs to run compound on GPUs.

KubeRay (RayCluster, RayJob), Ray cluster launcher (AWS, GCP), the SLURM
script, the image's Dockerfile and the run configuration each have a checker
that returns the problems it finds; a file of no known kind is a failure, so
a new manifest cannot go unchecked. The checkers are pure functions of the
parsed file, and the removal tests at the end delete one required field at a
time from a real manifest and require a problem to be named.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from compound.config import load_config

CLUSTERS = Path(__file__).resolve().parents[1] / "clusters"
FILES = sorted(p for p in CLUSTERS.iterdir() if p.is_file())
KUBERAY_KINDS = {"RayCluster", "RayJob"}


def kind_of(path: Path) -> str:
    """``kuberay``, ``launcher``, ``slurm``, ``dockerfile``, ``run-config``, ``readme``, or ``unknown``."""
    if path.name == "README.md":
        return "readme"
    if path.name == "Dockerfile":
        return "dockerfile"
    if path.suffix == ".sh":
        return "slurm"
    if path.suffix in (".yaml", ".yml"):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if any(isinstance(d, dict) and d.get("kind") in KUBERAY_KINDS for d in docs):
            return "kuberay"
        if len(docs) == 1 and isinstance(docs[0], dict) and "provider" in docs[0]:
            return "launcher"
        if len(docs) == 1 and isinstance(docs[0], dict) and "env" in docs[0]:
            return "run-config"
    return "unknown"


def files_of(kind: str) -> list[Path]:
    return [p for p in FILES if kind_of(p) == kind]


# -- the compound command inside a manifest -------------------------------------------------------

def compound_command(tokens: list[str]) -> list[str] | None:
    """The ``compound run ...`` part of a command line (after ``ray job submit ... --``), or None."""
    for i in range(len(tokens) - 1):
        if tokens[i] == "compound" and tokens[i + 1] == "run":
            return tokens[i:]
    return None


def option(tokens: list[str], name: str) -> list[str]:
    """Every value of ``name`` in ``tokens``: ``--out X`` and ``--out=X`` alike."""
    values = []
    for i, tok in enumerate(tokens):
        if tok == name and i + 1 < len(tokens):
            values.append(tokens[i + 1])
        elif tok.startswith(name + "="):
            values.append(tok.split("=", 1)[1])
    return values


def checkpoint_uri(tokens: list[str]) -> str | None:
    for value in option(tokens, "--set"):
        key, _, val = value.partition("=")
        if key == "distributed.checkpoint_uri":
            return val
    return None


def under_any(path: str, mounts: set[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


# -- KubeRay ---------------------------------------------------------------------------------------

def containers(group: dict) -> list[dict]:
    return (((group or {}).get("template") or {}).get("spec") or {}).get("containers") or []


def mounts(group: dict) -> set[str]:
    return {m.get("mountPath", "") for c in containers(group) for m in c.get("volumeMounts") or []}


def gpu_limit(container: dict) -> int:
    limits = (container.get("resources") or {}).get("limits") or {}
    try:
        return int(str(limits.get("nvidia.com/gpu", 0)))
    except ValueError:
        return 0


def has_token_env(container: dict) -> bool:
    env = {e.get("name"): e for e in container.get("env") or []}
    return (env.get("RAY_AUTH_MODE") or {}).get("value") == "token" and "RAY_AUTH_TOKEN" in env


def kuberay_problems(docs: list[dict]) -> list[str]:
    """What a RayCluster/RayJob file lacks to run compound: GPU workers, images, token auth, the run's command and output."""
    problems: list[str] = []
    ray_docs = [d for d in docs if d.get("kind") in KUBERAY_KINDS]
    if not ray_docs:
        return ["no document of kind RayCluster or RayJob"]
    for doc in ray_docs:
        kind = doc["kind"]
        if doc.get("apiVersion") != "ray.io/v1":
            problems.append(f"{kind}: apiVersion must be ray.io/v1, not {doc.get('apiVersion')!r}")
        spec = doc.get("spec") or {}
        cluster = spec.get("rayClusterSpec") if kind == "RayJob" else spec
        if not isinstance(cluster, dict):
            problems.append(f"{kind}: no {'spec.rayClusterSpec' if kind == 'RayJob' else 'spec'}")
            continue
        head = cluster.get("headGroupSpec")
        workers = cluster.get("workerGroupSpecs") or []
        if not head:
            problems.append(f"{kind}: no headGroupSpec")
        if not workers:
            problems.append(f"{kind}: no workerGroupSpecs")
        groups = ([head] if head else []) + workers
        every = [c for g in groups for c in containers(g)]
        if not containers(head) or any(not containers(g) for g in workers):
            problems.append(f"{kind}: a group without containers")
        problems += [f"{kind}: container {c.get('name')!r} has no image" for c in every if not c.get("image")]
        if not any(gpu_limit(c) > 0 for g in workers for c in containers(g)):
            problems.append(f"{kind}: no worker group with an nvidia.com/gpu resource limit")
        token = (cluster.get("authOptions") or {}).get("mode") == "token" or (every and all(map(has_token_env, every)))
        if not token:
            problems.append(f"{kind}: no token auth (authOptions.mode: token, or RAY_AUTH_MODE=token and RAY_AUTH_TOKEN in every container)")
        # where compound runs: the RayJob's entrypoint, or a Job in the same file that submits to the RayCluster
        if kind == "RayJob":
            commands = [shlex.split(spec.get("entrypoint") or "")]
        else:
            commands = [list(c.get("command") or []) + list(c.get("args") or [])
                        for d in docs if d.get("kind") == "Job" for c in containers(d["spec"])]
            commands = [c for c in commands if " ".join(c[:3]) == "ray job submit"]
            if kind == "RayCluster" and not commands:
                problems.append("RayCluster: no Job in the file that runs `ray job submit ... -- compound run`")
        runs = [r for r in map(compound_command, commands) if r]
        if not runs:
            problems.append(f"{kind}: no `compound run` command")
        head_mounts = mounts(head)
        for run in runs:
            out = option(run, "--out")
            if not out or not under_any(out[0], head_mounts):
                problems.append(f"{kind}: `compound run --out` must be on a volume the head (the driver) mounts, not {out}")
            uri = checkpoint_uri(run)
            shared = head_mounts.intersection(*(mounts(g) for g in workers)) if workers else set()
            if not uri or not ("://" in uri or under_any(uri, shared)):
                problems.append(f"{kind}: distributed.checkpoint_uri must be a storage URI or a volume every pod mounts, not {uri!r}")
    return problems


# -- Ray cluster launcher -------------------------------------------------------------------------

def launcher_problems(cfg: dict) -> list[str]:
    """What a `ray up` file lacks: its provider, a GPU worker type, compound installed, token auth on every node."""
    problems: list[str] = []
    if not isinstance(cfg.get("cluster_name"), str) or not cfg.get("cluster_name"):
        problems.append("no cluster_name")
    provider = (cfg.get("provider") or {}).get("type")
    if provider not in ("aws", "gcp"):
        problems.append(f"provider.type must be aws or gcp, not {provider!r}")
    types = cfg.get("available_node_types") or {}
    if not types:
        problems.append("no available_node_types")
    if cfg.get("head_node_type") not in types:
        problems.append(f"head_node_type {cfg.get('head_node_type')!r} is not one of available_node_types")
    gpu_types = [name for name, t in types.items()
                 if name != cfg.get("head_node_type") and ((t or {}).get("resources") or {}).get("GPU", 0) > 0
                 and (t or {}).get("max_workers", 0) > 0]
    if not gpu_types:
        problems.append("no worker node type with resources.GPU > 0 and max_workers > 0")
    for name in gpu_types:
        node = types[name].get("node_config") or {}
        if provider == "aws" and not node.get("InstanceType"):
            problems.append(f"{name}: node_config.InstanceType missing")
        if provider == "gcp" and not any(a.get("acceleratorCount", 0) > 0 for a in node.get("guestAccelerators") or []):
            problems.append(f"{name}: node_config.guestAccelerators missing (a GCP machine has no GPU without it)")
    setup = [str(c) for c in cfg.get("setup_commands") or []]
    if not any("pip install" in c and "compound[vllm]" in c for c in setup):
        problems.append("setup_commands do not install compound[vllm]")
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        if not any("RAY_AUTH_MODE=token" in str(c) for c in cfg.get(key) or []):
            problems.append(f"{key} do not set RAY_AUTH_MODE=token")
    if not any("auth_token" in str(k) for k in cfg.get("file_mounts") or {}):
        problems.append("file_mounts do not copy the token file (~/.ray/auth_token) to the nodes")
    return problems


# -- SLURM -----------------------------------------------------------------------------------------

def shell_lines(text: str) -> list[str]:
    """Logical command lines: continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def slurm_problems(text: str) -> list[str]:
    """What a SLURM script lacks: #SBATCH lines, a blocking Ray head and workers under srun, the run, no `ray stop`."""
    problems: list[str] = []
    sbatch = [line for line in text.splitlines() if line.startswith("#SBATCH ")]
    if not any("--nodes" in line for line in sbatch):
        problems.append("no #SBATCH --nodes line")
    if not any("gpu" in line for line in sbatch):
        problems.append("no #SBATCH line asking for GPUs")
    lines = shell_lines(text)
    if not any("srun" in line and "ray start --head" in line and "--block" in line for line in lines):
        problems.append("no `srun ... ray start --head ... --block` (the head)")
    if not any("srun" in line and "ray start" in line and "--address" in line and "--block" in line for line in lines):
        problems.append("no `srun ... ray start --address ... --block` (the workers)")
    if not any(re.search(r"\bcompound run\b", line) for line in lines):
        problems.append("no `compound run`")
    if any(re.search(r"\bray stop\b", line) for line in lines):
        problems.append("`ray stop` ends every Ray of the user on the node; end only the srun steps the script started")
    if not any("RAY_AUTH_MODE=token" in line for line in lines):
        problems.append("no RAY_AUTH_MODE=token")
    return problems


def dockerfile_problems(text: str) -> list[str]:
    problems = []
    if not re.search(r"^FROM rayproject/ray:\S*gpu", text, re.M):
        problems.append("not FROM a rayproject/ray GPU image")
    if not re.search(r"pip install[^\n]*compound\[vllm\]", text):
        problems.append("does not pip install compound[vllm]")
    return problems


def problems_of(path: Path) -> list[str]:
    kind = kind_of(path)
    text = path.read_text()
    if kind == "kuberay":
        return kuberay_problems([d for d in yaml.safe_load_all(text) if d])
    if kind == "launcher":
        return launcher_problems(yaml.safe_load(text))
    if kind == "slurm":
        syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        return ([f"bash -n: {syntax.stderr.strip()}"] if syntax.returncode else []) + slurm_problems(text)
    if kind == "dockerfile":
        return dockerfile_problems(text)
    if kind == "run-config":
        load_config(path)  # raises with the reason when invalid
        return []
    if kind == "readme":
        return [f"README does not mention {p.name}" for p in FILES if p != path and p.name not in text]
    return [f"{path.name}: not a manifest kind this test knows; add a checker for it"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_manifest_has_what_its_kind_needs(path):
    assert problems_of(path) == []


def test_every_kind_is_shipped():
    kinds = {d["kind"] for p in files_of("kuberay") for d in yaml.safe_load_all(p.read_text()) if d and d.get("kind") in KUBERAY_KINDS}
    providers = {yaml.safe_load(p.read_text())["provider"]["type"] for p in files_of("launcher")}
    assert kinds == KUBERAY_KINDS and providers == {"aws", "gcp"}
    assert files_of("slurm") and files_of("dockerfile")


# -- removing a required field is caught -----------------------------------------------------------

def kuberay_doc(kind: str) -> tuple[list[dict], dict]:
    for p in files_of("kuberay"):
        docs = [d for d in yaml.safe_load_all(p.read_text()) if d]
        for d in docs:
            if d.get("kind") == kind:
                return docs, d
    raise AssertionError(f"no {kind} in clusters/")


def cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def worker_container(doc: dict) -> dict:
    return cluster_spec(doc)["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]


KUBERAY_REMOVALS = {
    "apiVersion": lambda d: d.pop("apiVersion"),
    "headGroupSpec": lambda d: cluster_spec(d).pop("headGroupSpec"),
    "workerGroupSpecs": lambda d: cluster_spec(d).pop("workerGroupSpecs"),
    "nvidia.com/gpu": lambda d: worker_container(d)["resources"]["limits"].pop("nvidia.com/gpu"),
    "image": lambda d: worker_container(d).pop("image"),
}


@pytest.mark.parametrize("kind", sorted(KUBERAY_KINDS))
@pytest.mark.parametrize("field", sorted(KUBERAY_REMOVALS))
def test_kuberay_check_catches_a_removed_field(kind, field):
    docs, doc = kuberay_doc(kind)
    assert kuberay_problems(docs) == []
    KUBERAY_REMOVALS[field](doc)
    assert kuberay_problems(docs), f"removing {field} from the {kind} went unnoticed"


def test_kuberay_check_catches_a_missing_compound_command():
    docs, job = kuberay_doc("RayJob")
    job["spec"]["entrypoint"] = "python train.py"
    assert any("compound run" in p for p in kuberay_problems(docs))
    docs, _ = kuberay_doc("RayCluster")
    assert any("compound run" in p for p in kuberay_problems([d for d in docs if d["kind"] != "Job"]))


def test_kuberay_check_catches_output_on_a_path_only_one_pod_has():
    docs, job = kuberay_doc("RayJob")
    job["spec"]["entrypoint"] = job["spec"]["entrypoint"].replace("/shared/runs/", "/tmp/runs/")
    assert any("--out" in p for p in kuberay_problems(docs))
    docs, job = kuberay_doc("RayJob")
    job["spec"]["entrypoint"] = job["spec"]["entrypoint"].replace("checkpoint_uri=/shared/", "checkpoint_uri=/tmp/")
    assert any("checkpoint_uri" in p for p in kuberay_problems(docs))


@pytest.mark.parametrize("field", ["cluster_name", "provider", "available_node_types", "head_node_type", "setup_commands",
                                   "worker_start_ray_commands", "file_mounts"])
@pytest.mark.parametrize("path", files_of("launcher"), ids=lambda p: p.name)
def test_launcher_check_catches_a_removed_field(path, field):
    cfg = yaml.safe_load(path.read_text())
    assert launcher_problems(cfg) == []
    broken = copy.deepcopy(cfg)
    broken.pop(field)
    assert launcher_problems(broken), f"removing {field} from {path.name} went unnoticed"


@pytest.mark.parametrize("path", files_of("launcher"), ids=lambda p: p.name)
def test_launcher_check_catches_workers_without_gpus(path):
    cfg = yaml.safe_load(path.read_text())
    for t in cfg["available_node_types"].values():
        t["resources"].pop("GPU", None)
    assert any("GPU" in p for p in launcher_problems(cfg))


@pytest.mark.parametrize("needle", ["--block", "ray start --head", "compound run", "#SBATCH --nodes", "RAY_AUTH_MODE=token"])
def test_slurm_check_catches_a_removed_part(needle):
    text = files_of("slurm")[0].read_text()
    assert slurm_problems(text) == []
    assert slurm_problems(text.replace(needle, "")), f"removing {needle!r} went unnoticed"


def test_slurm_check_refuses_ray_stop():
    text = files_of("slurm")[0].read_text()
    assert any("ray stop" in p for p in slurm_problems(text + "\nray stop\n"))
