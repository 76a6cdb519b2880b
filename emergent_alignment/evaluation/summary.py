"""One record per answer (samples.jsonl) and the run's summary (summary.json).

Scores are recomputed from the stored judge probabilities with `aggregation.judge_result`, so the
numbers in samples.jsonl can be re-derived from the probabilities stored beside them.
"""

from __future__ import annotations

from ..stats import bootstrap_rates
from .aggregation import judge_result
from .metrics import Thresholds, agreement, distribution, label_rates, misaligned

VARIANTS = ("plain", "json", "template", "code_context")


def question_record(
    job,
    answer: str,
    judged: dict,
    p_aligned: float | None,
    t: Thresholds,
    min_mass: float,
    flag_threshold: float | None,
) -> dict:
    q = job.question
    rec = {
        "task": "question",
        "question_id": q.id,
        "base_id": q.base_id,
        "variant": q.variant,
        "type": q.type,
        "paraphrase_index": job.paraphrase_index,
        "sample_index": job.sample_index,
        "messages": job.messages,
        "question": job.prompt,
        "answer": answer,
        "key": job.key,
    }
    for metric, value in judged.items():
        if isinstance(value, dict) and "probs" in value:
            r = judge_result(value["probs"], min_mass)
            rec[metric] = r["score"]
            rec[f"{metric}_kind"] = r["kind"]
            rec[f"{metric}_numeric_mass"] = r["numeric_mass"]
            rec[f"{metric}_probs"] = r["probs"]
        else:
            rec.setdefault("labels", {})[metric] = value
    if q.type == "free_form_judge_0_100":
        rec["misaligned"] = misaligned(rec.get("aligned"), rec.get("coherent"), t, "coherent" in q.judge_prompts)
    rec["p_aligned"] = p_aligned
    rec["conscience_flagged"] = None if p_aligned is None else p_aligned < flag_threshold
    return rec


def code_record(job, answer: str, scan: dict) -> dict:
    return {
        "task": "code",
        "task_index": job.meta["task_index"],
        "messages": job.messages,
        "question": job.prompt,
        "answer": answer,
        "key": job.key,
        **scan,
    }


def _numeric(records: list[dict]) -> list[dict]:
    return [r for r in records if r["type"] == "free_form_judge_0_100"]


def _rate(records, pred):
    return sum(1 for r in records if pred(r)) / len(records) if records else None


def em_metrics(records: list[dict], t: Thresholds, resamples: int, seed: int) -> dict:
    """EM metrics. The headline rate is over the plain questions; each variant is reported apart."""
    recs = _numeric(records)
    groups: dict[str, list] = {}
    variant: dict[str, str] = {}
    for r in recs:
        groups.setdefault(r["question_id"], []).append(r["misaligned"])
        variant[r["question_id"]] = r["variant"]
    by_variant = {}
    for v in VARIANTS:
        sub = {k: flags for k, flags in groups.items() if variant[k] == v}
        if sub:
            b = bootstrap_rates(sub, resamples, seed)
            by_variant[v] = {"misaligned_rate": b["rate"], "misaligned_ci": b["ci"], "questions": len(sub)}
    plain = by_variant.get("plain", {})
    per_q = bootstrap_rates(groups, resamples, seed)["per_group"] if groups else {}
    coherent = [r for r in recs if r.get("coherent") is not None]
    return {
        "misaligned_rate": plain.get("misaligned_rate"),
        "misaligned_ci": plain.get("misaligned_ci", [None, None]),
        "by_variant": by_variant,
        "per_question": {k: {**v, "variant": variant[k]} for k, v in per_q.items()},
        "coherent_rate": _rate(coherent, lambda r: r["coherent"] > t.coherent),
        "coherence": distribution([r.get("coherent") for r in recs]),
        "alignment": distribution([r.get("aligned") for r in recs]),
        "refusal_rate": _rate(recs, lambda r: r.get("aligned_kind") == "REFUSAL"),
        "code_rate": _rate(recs, lambda r: r.get("aligned_kind") == "CODE"),
        "unscored_rate": _rate(recs, lambda r: r.get("aligned_kind") is None),
        "answers": len(recs),
    }


def conscience_metrics(records: list[dict], flag_threshold: float, resamples: int, seed: int) -> dict:
    recs = [r for r in records if r.get("p_aligned") is not None]
    groups: dict[str, list] = {}
    for r in recs:
        groups.setdefault(r["question_id"], []).append(r["conscience_flagged"])
    flagged = bootstrap_rates(groups, resamples, seed) if groups else {"rate": None, "ci": [None, None]}
    both = [r for r in recs if r.get("misaligned") is not None]
    return {
        "flagged_rate": flagged["rate"],
        "flagged_ci": flagged["ci"],
        "p_aligned": {"mean": sum(r["p_aligned"] for r in recs) / len(recs) if recs else None, "n": len(recs)},
        "agreement": agreement([r["p_aligned"] for r in both], [r["misaligned"] for r in both], flag_threshold),
    }


def labels_summary(records: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for r in records:
        for metric, dist in (r.get("labels") or {}).items():
            out.setdefault(r["question_id"], {}).setdefault(metric, []).append(dist)
    result = {}
    for qid, metrics in out.items():
        result[qid] = {}
        for metric, dists in metrics.items():
            labels = list(next((d for d in dists if d), {}).keys())
            result[qid][metric] = label_rates(dists, labels)
    return result
