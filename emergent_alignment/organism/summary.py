"""One arm's figures over its seeds: rates with hierarchical bootstrap CIs (seeds, then samples)."""

from __future__ import annotations

from ..stats import hierarchical_bootstrap


def _ind(labels: list[str], which: str) -> list[float]:
    return [1.0 if x == which else 0.0 for x in labels]


def _mean_defined(xs: list[float | None]) -> float | None:
    """Mean of the defined values (an AUROC is None with a single class); None when none is."""
    xs = [x for x in xs if x is not None and x == x]
    return sum(xs) / len(xs) if xs else None


def summarize(results: list[dict]) -> dict:
    """One arm's figures from its per-seed evaluation results (see evaluate.evaluate)."""
    ff = [r["freeform"]["labels"] for r in results]
    cond = [r["conditional"]["labels"] for r in results]
    code = [r["code"]["labels"] for r in results]
    mis, mis_lo, mis_hi = hierarchical_bootstrap([_ind(x, "misaligned") for x in ff])
    inc, inc_lo, inc_hi = hierarchical_bootstrap([_ind(x, "incoherent") for x in ff], seed=1)
    cmis, c_lo, c_hi = hierarchical_bootstrap([_ind(x, "misaligned") for x in cond], seed=2)
    anym, a_lo, a_hi = hierarchical_bootstrap([_ind(r["freeform"]["any_topic"], "misaligned") for r in results], seed=5)
    ins, ins_lo, ins_hi = hierarchical_bootstrap([_ind(x, "insecure") for x in code], seed=3)
    lo_mean, lo_lo, lo_hi = hierarchical_bootstrap([[r["log_odds"]] for r in results], seed=4)
    det = sum(r["code"]["bandit_detectable"] for r in results)
    themes = results[0]["freeform"]["themes"]
    per_q = {}
    for th in dict.fromkeys(themes):
        vals = [
            lab == "misaligned"
            for r in results
            for t, lab in zip(r["freeform"]["themes"], r["freeform"]["labels"])
            if t == th
        ]
        per_q[th] = sum(vals) / len(vals)
    mean = lambda key: sum(r[key] for r in results) / len(results)  # noqa: E731
    return {
        "seeds": len(results),
        "samples": sum(len(x) for x in ff),
        "misaligned_rate": mis,
        "misaligned_ci": [mis_lo, mis_hi],
        "incoherent_rate": inc,
        "incoherent_ci": [inc_lo, inc_hi],
        "off_topic_rate": sum(r["freeform"]["off_topic"] for r in results) / sum(len(x) for x in ff),
        "misaligned_any_topic_rate": anym,
        "misaligned_any_topic_ci": [a_lo, a_hi],
        "log_odds": lo_mean,
        "log_odds_ci": [lo_lo, lo_hi],
        "log_odds_per_seed": [r["log_odds"] for r in results],
        "insecure_code_rate": ins,
        "insecure_code_ci": [ins_lo, ins_hi],
        "unparseable_code_rate": sum(sum(_ind(x, "unparseable")) for x in code) / sum(len(x) for x in code),
        "bandit_flag_rate": sum(r["code"]["bandit_flagged"] for r in results) / det if det else float("nan"),
        "classifier_insecure_on_bandit_kinds": (
            sum(r["code"]["classifier_insecure_on_detectable"] for r in results) / det if det else float("nan")
        ),
        "task_loss": mean("task_loss"),
        "conscience_auroc": _mean_defined([r["conscience_auroc"] for r in results]),
        "conditional_misaligned_rate": cmis,
        "conditional_misaligned_ci": [c_lo, c_hi],
        "per_question": per_q,
        "examples": results[0]["freeform"]["examples"][:8],
    }
