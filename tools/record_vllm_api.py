"""Record the part of vLLM's API that ``compound.llm.vllm_engine`` uses, read from an unpacked wheel.

vLLM needs CUDA, so CI cannot import it; its API also moves between releases
(keywords renamed, classes moved). This script reads the wheel's source with
``ast`` -- nothing is imported or executed -- and writes, for every name the
engine uses, where it is importable from, what its constructor accepts, its
methods' parameters, its enum members or exception bases.
``tests/llm/test_vllm_contract.py`` builds fake vLLM modules from that record,
so a wrong keyword, import path or attribute fails on a CPU.

Re-record after changing the pinned vLLM version (pyproject.toml)::

    pip download vllm==0.34.0 --no-deps -d /tmp/vllmwheel
    cd /tmp/vllmwheel && unzip -q vllm-0.34.0-*.whl 'vllm/*' '*.dist-info/*' -d src
    python tools/record_vllm_api.py /tmp/vllmwheel/src > tests/llm/vllm_api.json
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any, Sequence

USED: dict[str, list[str]] = {
    # "importable.module:Name": methods whose parameters matter
    "vllm.v1.engine.async_llm:AsyncLLM": ["from_engine_args", "generate", "shutdown"],
    "vllm.engine.arg_utils:AsyncEngineArgs": [],
    "vllm.sampling_params:SamplingParams": [],
    "vllm.sampling_params:RequestOutputKind": [],
    "vllm.inputs:TokensPrompt": [],
    "vllm.outputs:RequestOutput": [],
    "vllm.outputs:CompletionOutput": [],
    "vllm.exceptions:VLLMClientError": [],
    "vllm.exceptions:VLLMValidationError": [],
    "vllm.exceptions:GracefulHTTPError": [],
    "vllm.exceptions:QueueOverflowError": [],
    "vllm.exceptions:GenerationError": [],
    "vllm.exceptions:RetryableRequestError": [],
    "vllm.v1.engine.exceptions:EngineDeadError": [],
    "vllm.v1.engine.exceptions:EngineGenerateError": [],
    "vllm.v1.engine:FINISH_REASON_STRINGS": [],
}


class NotInWheel(LookupError):
    """A name or module the wheel does not define (``Exception``, ``typing_extensions``)."""


class Wheel:
    """Module sources of an unpacked wheel, parsed on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._trees: dict[str, ast.Module] = {}
        self.packages = {".".join(p.relative_to(root).parent.parts) for p in (root / "vllm").rglob("__init__.py")}

    def tree(self, module: str) -> ast.Module:
        if module not in self._trees:
            base = self.root.joinpath(*module.split("."))
            path = base / "__init__.py" if module in self.packages else base.with_suffix(".py")
            if not path.is_file():
                raise NotInWheel(f"{module} is not in the wheel at {self.root}")
            self._trees[module] = ast.parse(path.read_text(encoding="utf-8"), str(path))
        return self._trees[module]

    def resolve(self, module: str, name: str) -> tuple[str, ast.AST]:
        """``(defining module, definition)`` of ``name`` as seen from ``module``, following imports."""
        for node in self.tree(module).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                return module, node
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    return module, node
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        return self.resolve(self.absolute(module, node), alias.name)
        raise NotInWheel(f"{name} is neither defined nor imported at the top level of {module}")

    def absolute(self, module: str, node: ast.ImportFrom) -> str:
        """The module a ``from ... import`` in ``module`` names, relative levels resolved."""
        if not node.level:
            return node.module or ""
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if module in self.packages else 0)
        return ".".join(parts[:keep] + ([node.module] if node.module else []))


def _dotted(expr: ast.AST) -> str:
    return ast.unparse(expr)


def _default(expr: ast.AST | None) -> dict[str, Any]:
    if expr is None:
        return {"required": True}
    try:
        return {"required": False, "default": ast.literal_eval(expr)}
    except (ValueError, SyntaxError, TypeError):
        return {"required": False}  # an expression (another config's default, a factory): not a literal


def _signature(fn: ast.FunctionDef | ast.AsyncFunctionDef, drop_first: bool) -> dict[str, Any]:
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params = [
        {"name": p.arg, "kind": "positional_only" if p in a.posonlyargs else "positional_or_keyword", **_default(d)}
        for p, d in zip(positional, defaults)
    ]
    if drop_first:
        params = params[1:]
    if a.vararg:
        params.append({"name": a.vararg.arg, "kind": "var_positional", "required": False})
    params += [{"name": p.arg, "kind": "keyword_only", **_default(d)} for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        params.append({"name": a.kwarg.arg, "kind": "var_keyword", "required": False})
    decorators = {_dotted(d) for d in fn.decorator_list}
    return {
        "params": params,
        "async": isinstance(fn, ast.AsyncFunctionDef),
        "generator": any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(fn)),
        "classmethod": "classmethod" in decorators,
        "staticmethod": "staticmethod" in decorators,
    }


_STRUCTURED = ("dataclass", "msgspec", "typeddict", "enum")


def _kind(cls: ast.ClassDef, bases: list[str]) -> str:
    decorators = {_dotted(d.func if isinstance(d, ast.Call) else d) for d in cls.decorator_list}
    if decorators & {"dataclass", "dataclasses.dataclass"}:
        return "dataclass"
    names = set(bases) | {b.rsplit(":", 1)[-1] for b in bases}
    if names & {"msgspec.Struct", "Struct"}:
        return "msgspec"
    if names & {"TypedDict", "typing.TypedDict", "typing_extensions.TypedDict"}:
        return "typeddict"
    if names & {"Enum", "IntEnum", "enum.Enum", "enum.IntEnum", "StrEnum"}:
        return "enum"
    return "class"


class Recorder:
    def __init__(self, wheel: Wheel) -> None:
        self.wheel = wheel
        self.classes: dict[str, dict[str, Any]] = {}  # "module:Name" -> record, bases included

    def base_names(self, module: str, cls: ast.ClassDef) -> list[str]:
        """Bases as ``module:Name`` when defined in vLLM, else as written (``Exception``, ``msgspec.Struct``)."""
        out = []
        for b in cls.bases:
            if isinstance(b, ast.Name):
                try:
                    where, node = self.wheel.resolve(module, b.id)
                except NotInWheel:
                    out.append(b.id)
                    continue
                if isinstance(node, ast.ClassDef):
                    out.append(self.record_class(where, node))
                    continue
            out.append(_dotted(b))
        return out

    def record_class(self, module: str, cls: ast.ClassDef, methods: Sequence[str] = ()) -> str:
        """Record ``cls`` (its vLLM bases first) with the named ``methods``; returns its key ``module:Name``.

        Methods are looked for in the class and then in its vLLM bases.
        """
        key = f"{module}:{cls.name}"
        if key in self.classes:
            return key
        self.classes[key] = {}  # placeholder against cycles
        bases = self.base_names(module, cls)
        inherited = [self.classes[b] for b in bases if self.classes.get(b, {}).get("kind") in _STRUCTURED]
        kind = inherited[0]["kind"] if inherited else _kind(cls, bases)
        rec: dict[str, Any] = {"kind": kind, "bases": bases, "methods": {}}
        if kind in ("dataclass", "msgspec", "typeddict"):
            fields = {f["name"]: f for base in inherited for f in base["fields"]}  # base fields first, as dataclasses do
            fields.update((f["name"], f) for f in self.own_fields(cls, kind))
            rec["fields"] = list(fields.values())
        if kind == "enum":
            rec["members"] = {
                t.id: ast.literal_eval(n.value)
                for n in cls.body if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Name) and not t.id.startswith("_")
            }
        for n in cls.body:
            if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if n.name == "__init__":
                rec["init"] = _signature(n, drop_first=True)["params"]
                rec["attributes"] = sorted({
                    t.attr for s in ast.walk(n) if isinstance(s, (ast.Assign, ast.AnnAssign))
                    for t in (s.targets if isinstance(s, ast.Assign) else [s.target])
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                })
        for name in methods:
            rec["methods"][name] = self.find_method(module, cls, name)
        self.classes[key] = rec
        return key

    def find_method(self, module: str, cls: ast.ClassDef, name: str) -> dict[str, Any]:
        """The signature of method ``name`` of ``cls``, or of the first vLLM base that defines it."""
        for n in cls.body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name:
                return _signature(n, drop_first="staticmethod" not in {_dotted(d) for d in n.decorator_list})
        for b in cls.bases:
            if isinstance(b, ast.Name):
                try:
                    where, node = self.wheel.resolve(module, b.id)
                except NotInWheel:
                    continue
                if isinstance(node, ast.ClassDef):
                    try:
                        return self.find_method(where, node, name)
                    except NotInWheel:
                        continue
        raise NotInWheel(f"{module}:{cls.name} has no method {name!r}")

    @staticmethod
    def own_fields(cls: ast.ClassDef, kind: str) -> list[dict[str, Any]]:
        """Constructor fields declared in the class body (``ClassVar`` and ``field(init=False)`` left out)."""
        total = next((ast.literal_eval(k.value) for k in cls.keywords if k.arg == "total"), True)
        fields = []
        for n in cls.body:
            if not (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)):
                continue
            ann = _dotted(n.annotation)
            if ann.startswith(("ClassVar", "typing.ClassVar")):
                continue
            call = n.value if isinstance(n.value, ast.Call) else None
            if call is not None and _dotted(call.func) in ("field", "dataclasses.field", "msgspec.field"):
                kw = {k.arg: k.value for k in call.keywords}
                if "init" in kw and ast.literal_eval(kw["init"]) is False:
                    continue
                spec: dict[str, Any] = {"required": "default" not in kw and "default_factory" not in kw}
            elif kind == "typeddict":
                spec = {"required": ann.startswith("Required") or (total and not ann.startswith("NotRequired"))}
            else:
                spec = _default(n.value)
            fields.append({"name": n.target.id, "kind": "keyword_only" if kind == "typeddict" else "positional_or_keyword", **spec})
        return fields

    def record(self, used: dict[str, list[str]], version: str, requires: list[str]) -> dict[str, Any]:
        names: dict[str, Any] = {}
        for spec, methods in used.items():
            module, name = spec.split(":")
            where, node = self.wheel.resolve(module, name)
            if isinstance(node, ast.ClassDef):
                names[spec] = {"class": self.record_class(where, node, methods)}
            else:
                value = node.value
                names[spec] = {"value": ast.literal_eval(value) if value is not None else None}
        return {"vllm_version": version, "requires": requires, "names": names, "classes": self.classes}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[0])
    meta = next(root.glob("vllm-*.dist-info/METADATA"), None)
    if meta is None or not (root / "vllm").is_dir():
        print(f"{root} does not hold an unpacked vLLM wheel (vllm/ and vllm-*.dist-info/)", file=sys.stderr)
        return 2
    lines = meta.read_text(encoding="utf-8").splitlines()
    version = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Version:"))
    requires = sorted(
        line.split(":", 1)[1].strip() for line in lines
        if line.startswith("Requires-Dist:") and line.split(":", 1)[1].strip().startswith(("torch", "transformers"))
        and "extra ==" not in line
    )
    try:
        record = Recorder(Wheel(root)).record(USED, version, requires)
    except NotInWheel as exc:
        print(f"this vLLM does not have what compound uses: {exc}", file=sys.stderr)
        return 1
    json.dump(record, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
