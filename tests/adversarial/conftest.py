"""Fixtures for the adversarial tests (helpers live in _adv_helpers.py)."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run faster on one thread, above all on a shared machine; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def llama(llama_dir):
    from emergent_alignment.models import load_model

    return load_model(llama_dir)
