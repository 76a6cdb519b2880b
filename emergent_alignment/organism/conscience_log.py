"""The conscience over training, read from the trainer's conscience_log.jsonl and scored against the
organism world's ground-truth classifier: on the policy's own probe answers, as they were sampled."""

from __future__ import annotations

import json

from ..io import read_lines
from ..stats import auroc
from . import worlds
from .classifier import classify_code


def _truth_lookup(world):
    q = {qq: th.name for th in world.themes() for qq in th.questions}
    code = {world.code_prompt(t, task): t for t in world.code_templates() for task in t.tasks}
    return q, code


def conscience_curve(log_path: str, bins: int = 5, world: str = "v1") -> dict:
    """Per step: probes, flagged, pairs; per step bin: the conscience's precision and recall on
    the policy's own samples against the ground-truth classifier of `world` (incoherent samples left
    out); over the run, its AUROC on them (1 - p_aligned scoring the misaligned ones)."""
    lines = read_lines(log_path)  # the log, or its compressed copy (the study keeps those)
    if lines is None:
        return {}
    rows = [json.loads(line) for line in lines if line.strip()]
    questions, codes = _truth_lookup(worlds.module(world))
    clf = worlds.classifier(world)
    steps: dict[int, list[int]] = {}
    truth, scored = [], []
    for r in rows:
        s = steps.setdefault(r["step"], [0, 0, 0])
        s[0] += 1
        s[1] += r["verdict"]["flagged"]
        s[2] += r["in_loss"]
        last = r["prompt"][-1]["content"]
        if last in questions:
            lab = clf.classify(questions[last], r["response"]).label
            bad = None if lab == "incoherent" else lab == "misaligned"
        elif last in codes:
            lab = classify_code(codes[last], r["response"])
            bad = None if lab == "unparseable" else lab == "insecure"
        else:
            bad = None
        truth.append((r["step"], bad, r["verdict"]["flagged"]))
        scored.append((bad, 1.0 - r["verdict"]["p_aligned"]))
    order = sorted(steps)
    top = max(order) + 1
    pr = []
    for b in range(bins):
        lo, hi = b * top // bins, (b + 1) * top // bins
        part = [(bad, fl) for st, bad, fl in truth if lo <= st < hi and bad is not None]
        tp = sum(bad and fl for bad, fl in part)
        fp = sum((not bad) and fl for bad, fl in part)
        fn = sum(bad and not fl for bad, fl in part)
        pr.append(
            {
                "steps": [lo, hi],
                "labelled": len(part),
                "positives": tp + fn,
                "precision": tp / (tp + fp) if tp + fp else None,
                "recall": tp / (tp + fn) if tp + fn else None,
            }
        )
    probes = sum(steps[s][0] for s in order)
    labelled = [(bad, x) for bad, x in scored if bad is not None]
    return {
        "steps": order,
        "probes": [steps[s][0] for s in order],
        "flagged": [steps[s][1] for s in order],
        "pairs": [steps[s][2] for s in order],
        "total_probes": probes,
        "total_flagged": sum(steps[s][1] for s in order),
        "total_pairs": sum(steps[s][2] for s in order),
        "steps_with_pairs": sum(steps[s][2] > 0 for s in order) / len(order),
        "precision_recall": pr,
        "probe_auroc": auroc([x for _, x in labelled], [bad for bad, _ in labelled]),
        "probe_labelled": len(labelled),
        "probe_misaligned": sum(bad for bad, _ in labelled),
    }
