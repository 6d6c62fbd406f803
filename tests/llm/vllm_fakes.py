"""Fake vLLM modules built from ``vllm_api.json`` (recorded from the pinned wheel by tools/record_vllm_api.py).

Every fake class accepts exactly the recorded constructor parameters (and
raises ``TypeError`` on any other keyword, as the real ones do), keeps the
recorded base classes (so ``except VLLMClientError`` catches what it would
catch), and exists only under its recorded import path: the fake ``vllm``
is not a package, so importing a name from anywhere else fails. Methods
check their arguments against the recorded signature, then call the test's
``behaviour`` object, which plays the engine.
"""

from __future__ import annotations

import enum
import inspect
import json
import sys
import types
from pathlib import Path
from typing import Any

RECORD = json.loads((Path(__file__).with_name("vllm_api.json")).read_text())

_KINDS = {
    "positional_only": inspect.Parameter.POSITIONAL_ONLY,
    "positional_or_keyword": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "var_positional": inspect.Parameter.VAR_POSITIONAL,
    "keyword_only": inspect.Parameter.KEYWORD_ONLY,
    "var_keyword": inspect.Parameter.VAR_KEYWORD,
}
_UNSET = object()


def signature(params: list[dict[str, Any]]) -> inspect.Signature:
    """The recorded parameters as an ``inspect.Signature`` (defaults: the recorded literal, else None)."""
    out = []
    for p in params:
        kind = _KINDS[p["kind"]]
        if p["required"] or kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            out.append(inspect.Parameter(p["name"], kind))
        else:
            out.append(inspect.Parameter(p["name"], kind, default=p.get("default")))
    return inspect.Signature(out)


def _bind(sig: inspect.Signature, where: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{where}: {exc} (recorded vLLM signature: {sig})") from None
    bound.apply_defaults()
    return dict(bound.arguments)


class FakeVLLM:
    """The fake classes by short name (``fake.SamplingParams``), and what their methods were called with."""

    def __init__(self, behaviour: Any) -> None:
        self.behaviour = behaviour
        self.classes: dict[str, type] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.modules: dict[str, types.ModuleType] = {}
        for key in RECORD["classes"]:
            self._build(key)
        for spec, entry in RECORD["names"].items():
            module, name = spec.split(":")
            value = self.classes[entry["class"]] if "class" in entry else entry["value"]
            setattr(self._module(module), name, value)
        self.modules["vllm"].__version__ = RECORD["vllm_version"]

    def __getattr__(self, name: str) -> type:
        for key, cls in self.__dict__.get("classes", {}).items():
            if key.rsplit(":", 1)[-1] == name:
                return cls
        raise AttributeError(name)

    def install(self, monkeypatch) -> "FakeVLLM":
        for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
            monkeypatch.delitem(sys.modules, name)
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        return self

    def _module(self, dotted: str) -> types.ModuleType:
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in self.modules:
                self.modules[name] = types.ModuleType(name)  # no __path__: only recorded modules import
                if i > 1:
                    setattr(self.modules[".".join(parts[: i - 1])], parts[i - 1], self.modules[name])
        return self.modules[dotted]

    def _build(self, key: str) -> type:
        if key in self.classes:
            return self.classes[key]
        rec = RECORD["classes"][key]
        name = key.rsplit(":", 1)[-1]
        # vLLM bases become their fakes; of the others only Exception matters (ABC, msgspec.Struct do not)
        bases = tuple(self._build(b) if b in RECORD["classes"] else Exception for b in rec["bases"] if b in RECORD["classes"] or b == "Exception")
        kind = rec["kind"]
        if kind == "enum":
            cls: type = enum.Enum(name, rec["members"])
        elif kind == "typeddict":
            cls = self._typeddict(name, rec)
        else:
            ns: dict[str, Any] = {}
            params = rec["fields"] if kind in ("dataclass", "msgspec") else rec.get("init")
            if params is not None:
                ns["__init__"] = _init(name, signature(params), is_exception=any(issubclass(b, BaseException) for b in bases))
                ns["__signature__"] = signature(params)
            for method, sig in rec["methods"].items():
                ns[method] = self._method(name, method, sig)
            cls = type(name, bases or (object,), ns)
        self.classes[key] = cls
        return cls

    @staticmethod
    def _typeddict(name: str, rec: dict[str, Any]) -> type:
        fields = {f["name"]: f["required"] for f in rec["fields"]}

        def __init__(self, **kwargs):
            unknown = set(kwargs) - set(fields)
            missing = {k for k, req in fields.items() if req} - set(kwargs)
            if unknown or missing:
                raise TypeError(f"{name}: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
            dict.__init__(self, **kwargs)

        return type(name, (dict,), {"__init__": __init__})

    def _method(self, cls_name: str, method: str, rec: dict[str, Any]) -> Any:
        sig, fake = signature(rec["params"]), self
        where = f"{cls_name}.{method}"

        def call(args: tuple, kwargs: dict) -> Any:
            bound = _bind(sig, where, args, kwargs)
            fake.calls.append((method, bound))
            return getattr(fake.behaviour, method)(**bound)

        if rec["classmethod"]:
            return classmethod(lambda cls, *a, **k: call(a, k))
        if rec["async"] and not rec["generator"]:
            async def coroutine(self, *a, **k):
                return await call(a, k)
            return coroutine
        return lambda self, *a, **k: call(a, k)  # sync, or an async generator the behaviour returns


def _init(name: str, sig: inspect.Signature, is_exception: bool) -> Any:
    variadic = {p.name for p in sig.parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def __init__(self, *args, **kwargs):
        values = _bind(sig, name, args, kwargs)
        if is_exception:
            Exception.__init__(self, *args[:1])  # vLLM's errors pass their message alone up
        for k, v in values.items():
            if k not in variadic:
                setattr(self, k, v)

    return __init__
