"""Evaluation: the EM questions, judges (conscience, local HF, OpenAI-compatible), code security,
reports and comparisons. See docs/evaluation.md; the judge interface is in `judges.py`."""
