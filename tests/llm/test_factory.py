"""Engines by name."""

import pytest

from compound.llm import LLMClient, LLMError, make_llm
from compound.llm.openai_client import OpenAIClient


def test_known_engines_build():
    scripted = make_llm("scripted", script=["look"])
    assert isinstance(scripted, LLMClient)
    remote = make_llm("openai", base_url="http://127.0.0.1:9", model="m", max_retries=0)
    assert isinstance(remote, OpenAIClient) and remote.base_url == "http://127.0.0.1:9/v1"


def test_unknown_engine_names_the_choices():
    with pytest.raises(LLMError, match=r"unknown engine 'gpt'.*\['ct2', 'hf', 'latency', 'openai', 'scripted', 'vllm'\]"):
        make_llm("gpt")


def test_bad_arguments_name_what_the_engine_accepts():
    with pytest.raises(LLMError, match=r"engine 'openai' got bad arguments.*base_url"):
        make_llm("openai", url="http://x")
