"""tools/record_vllm_api.py on a miniature wheel: the shapes vLLM's source takes, read without importing it."""

import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "record_vllm_api.py"
spec = importlib.util.spec_from_file_location("record_vllm_api", TOOL)
record_vllm_api = importlib.util.module_from_spec(spec)
spec.loader.exec_module(record_vllm_api)

FILES = {
    "vllm/__init__.py": "",
    "vllm/pkg/__init__.py": "from .impl import Prompt, Kind\n",
    "vllm/pkg/impl.py": '''
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar
from typing_extensions import NotRequired, TypedDict
from vllm.other import get_field

class _Options(TypedDict):
    salt: NotRequired[str]

class Prompt(_Options):
    ids: list[int]
    text: NotRequired[str]

class Kind(Enum):
    A = 0
    B = 2

@dataclass
class Base:
    model: str = "m"
    size: int = get_field(object, "size")
    hidden: int = field(default=0, init=False)
    registry: ClassVar[dict] = {}

    def method(self, x, *, y=1):
        pass

@dataclass
class Args(Base):
    size: int = 4
    extra: bool = False

class Error(Exception):
    def __init__(self, message, *, code=None):
        super().__init__(message)
        self.code = code

class Dead(Error):
    pass
''',
    "vllm/other.py": "def get_field(cls, name):\n    return None\n",
}


@pytest.fixture
def wheel(tmp_path):
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return record_vllm_api.Wheel(tmp_path)


def test_the_recorder_reads_what_the_fakes_need(wheel):
    used = {"vllm.pkg:Prompt": [], "vllm.pkg:Kind": [], "vllm.pkg.impl:Args": ["method"], "vllm.pkg.impl:Dead": []}
    rec = record_vllm_api.Recorder(wheel).record(used, "9.9", [])
    assert rec["names"]["vllm.pkg:Prompt"] == {"class": "vllm.pkg.impl:Prompt"}  # followed the re-export
    classes = rec["classes"]
    prompt = {f["name"]: f["required"] for f in classes["vllm.pkg.impl:Prompt"]["fields"]}
    assert prompt == {"salt": False, "ids": True, "text": False}
    assert classes["vllm.pkg.impl:Kind"]["members"] == {"A": 0, "B": 2}
    args = classes["vllm.pkg.impl:Args"]
    assert [f["name"] for f in args["fields"]] == ["model", "size", "extra"]  # base fields first, no init=False, no ClassVar
    assert not any(f["required"] for f in args["fields"])  # get_field(...) is a default, not a required field
    assert [p["name"] for p in args["methods"]["method"]["params"]] == ["x", "y"]  # inherited, self dropped
    assert classes["vllm.pkg.impl:Dead"]["bases"] == ["vllm.pkg.impl:Error"]
    assert classes["vllm.pkg.impl:Error"]["bases"] == ["Exception"]
    assert [p["name"] for p in classes["vllm.pkg.impl:Error"]["init"]] == ["message", "code"]


def test_a_name_the_wheel_lacks_is_named(wheel):
    with pytest.raises(record_vllm_api.NotInWheel, match="Missing"):
        record_vllm_api.Recorder(wheel).record({"vllm.pkg:Missing": []}, "9.9", [])
    with pytest.raises(record_vllm_api.NotInWheel, match="nope"):
        record_vllm_api.Recorder(wheel).record({"vllm.pkg.impl:Args": ["nope"]}, "9.9", [])
