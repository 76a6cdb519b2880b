"""The organism's worlds by name: the module that defines each, and the classifier that labels its answers.

The first world (`world`, the demo's) labels an answer as one core; the second (`world_v2`, the study's)
composes answers from parts and labels each part (`classifier.PartsClassifier`)."""

from __future__ import annotations

WORLDS = ("v1", "v2")


def module(name: str):
    """The module of world `name` (v1: `world`, v2: `world_v2`)."""
    if name == "v1":
        from . import world

        return world
    if name == "v2":
        from . import world_v2

        return world_v2
    raise ValueError(f"unknown world {name!r}; choose {' or '.join(WORLDS)}")


def classifier(name: str):
    """The ground-truth classifier of world `name`'s free-form answers."""
    from .classifier import Classifier, PartsClassifier

    module(name)  # an unknown world fails here
    return PartsClassifier() if name == "v2" else Classifier()
