"""Helpers for the core tests (a uniquely named module: every test folder has its own conftest)."""


def load(path):
    from emergent_alignment.models import load_model

    return load_model(path)
