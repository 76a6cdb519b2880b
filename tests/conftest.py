"""Shared fixtures: tiny random checkpoints built locally (nothing is downloaded)."""

import os
import random

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory):
    """Tiny models are cached per test session, never in the user's cache."""
    os.environ["EMERGENT_ALIGNMENT_CACHE"] = str(tmp_path_factory.mktemp("ea-cache"))


def tiny(spec: str) -> str:
    from emergent_alignment.tiny import build_tiny

    return build_tiny(spec)


@pytest.fixture(scope="session")
def llama_dir(_cache):
    return tiny("tiny:llama")


@pytest.fixture(scope="session")
def qwen2_dir(_cache):
    return tiny("tiny:qwen2")


@pytest.fixture(scope="session")
def gpt2_plain_dir(_cache):
    """GPT-2 shaped, and its tokenizer has NO chat template (the plain fallback)."""
    return tiny("tiny:gpt2?template=none")
