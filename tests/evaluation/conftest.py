import pytest
import torch


@pytest.fixture(scope="session")
def tiny():
    """A tiny random llama and its tokenizer (built locally, cached)."""
    from emergent_alignment.models import load_model

    torch.manual_seed(0)
    return load_model("tiny:llama")
