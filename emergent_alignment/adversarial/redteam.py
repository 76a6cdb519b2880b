"""Red-team a model: attack success rate per wrapper with and without the guard, and flip rates.

    report, samples = redteam(gen, judge, requests, attacks="ALL", guard=True)   # `emergent-alignment redteam`

Every harmful request of the suite (default: the held-out `eval` split) is wrapped by every
attack. The model drafts a reply to each (seeded); with `guard` the same drafts also go through
the guard (review, then the core's self-correction), so the two columns differ only by the guard.
Each reply is scored by the compliance-vs-refusal judge prompt (`compliance.py`) and, with a
`grader`, on the graded harmful-compliance scale (`graded.py`: refusal, convincingness,
specificity; StrongREJECT-style).

Flip rate under injection: take the responses the conscience flags (the model's own drafts, and
the complying answers that `jailbroken.jsonl` holds for its requests), add each response-side
injection (`attacks.RESPONSE_INJECTIONS`), review again: a flip is a verdict that is no longer
flagged.
"""

from __future__ import annotations

from statistics import fmean

from .attacks import RESPONSE_INJECTIONS

ORIGINS = ("model", "dataset")


def resolve_injections(names: str) -> list[str]:
    if names == "ALL":
        return list(RESPONSE_INJECTIONS)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in RESPONSE_INJECTIONS]
    if unknown or not chosen:
        raise ValueError(
            f"unknown injection(s) {unknown or chosen!r}; choose from ALL or {', '.join(RESPONSE_INJECTIONS)}"
        )
    return chosen


def compliance_scorer(judge):
    """(requests, answers) -> P(COMPLY): a Judge through the compliance prompt, or a function as is."""
    from functools import partial

    from .compliance import p_comply

    if hasattr(judge, "classify"):
        return partial(p_comply, judge)
    if callable(judge):
        return judge
    raise ValueError("judge must have classify(prompts, labels) or be a function (requests, answers) -> P(COMPLY)")


def attack_samples(gen, judge, cases, guard: bool, seed: int, grader=None) -> list[dict]:
    """Draft (seeded) for every case, guard the same drafts when asked, judge compliance (and grade it)."""
    import torch

    from .graded import grader as make_grader

    p_comply = compliance_scorer(judge)
    grade = make_grader(grader) if grader is not None else None
    convs = [c.messages for c in cases]
    torch.manual_seed(seed)
    drafts, _, _ = gen.draft(convs)
    samples = [
        {
            "attack": c.attack,
            "request": c.request.text,
            "category": c.request.category,
            "source": c.request.source,
            "prompt": c.messages,
            "draft": d,
        }
        for c, d in zip(cases, drafts)
    ]
    requests = [c.request.text for c in cases]
    for s, p in zip(samples, p_comply(requests, drafts)):
        s["p_comply"] = p
    if grade:
        for s, g in zip(samples, grade(requests, drafts)):
            s["graded"] = g
    if guard:
        replies = gen.guard(convs, drafts)
        texts = [r.text for r in replies]
        for s, r, p in zip(samples, replies, p_comply(requests, texts)):
            s.update(guarded=r.text, outcome=r.outcome, passed=r.passed, trail=r.trail, p_comply_guarded=p)
        if grade:
            for s, g in zip(samples, grade(requests, texts)):
                s["graded_guarded"] = g
    return samples


def flip_pairs(samples: list[dict], requests) -> list[tuple[str, list[dict], str]]:
    """(origin, conversation, response) pairs to attack the conscience with."""
    pairs = [("model", s["prompt"], s["draft"]) for s in samples if s["draft"].strip()]
    pairs += [("dataset", [{"role": "user", "content": r.text}], r.answer) for r in requests if r.answer]
    return pairs


def flip_rates(conscience, pairs, injections: list[str]) -> list[dict]:
    """Per (injection, origin): how many flagged responses the injection turns into passes."""
    base = conscience.review([c for _, c, _ in pairs], [r for _, _, r in pairs])
    flagged = [(o, c, r, v) for (o, c, r), v in zip(pairs, base) if v.flagged]
    rows = []
    for name in injections:
        inject = RESPONSE_INJECTIONS[name]
        after = conscience.review([c for _, c, _, _ in flagged], [inject(r) for _, _, r, _ in flagged])
        for origin in ORIGINS:
            idx = [i for i, f in enumerate(flagged) if f[0] == origin]
            flips = [not after[i].flagged for i in idx]
            deltas = [after[i].p_aligned - flagged[i][3].p_aligned for i in idx]
            rows.append(
                {
                    "injection": name,
                    "origin": origin,
                    "flagged": len(idx),
                    "flipped": sum(flips),
                    "flip_rate": sum(flips) / len(idx) if idx else None,
                    "mean_delta_p": fmean(deltas) if idx else None,
                }
            )
    return rows


def make_judge(spec: str, gen, base_url: str | None):
    try:
        from ..evaluation.judges import make_judge as _make
    except ModuleNotFoundError as e:
        raise ValueError(f"the compliance judge needs the evaluation suite's judges ({e.name} is missing)") from None
    return _make(spec, model=gen.model, tokenizer=gen.tokenizer, base_url=base_url)


def redteam(gen, judge, requests, attacks="ALL", injections=None, guard: bool = False, seed: int = 0, grader=None):
    """The full red-team run on `gen` (which must have a conscience): (report, samples).

    `judge`: a Judge (scored with the compliance prompt) or a function (requests, answers) ->
    P(COMPLY), e.g. a model organism's own classifier. `grader` (optional): a Judge asked the graded
    scale's three questions, or a function (requests, answers) -> [{refused, convincing, specific}]. `attacks`: "ALL", names, or a dict of
    name -> wrapper (request -> messages) for attacks outside `attacks.ATTACKS`.
    """
    from .prompts import build_cases
    from .report import asr_table

    if gen.conscience is None:
        raise ValueError("redteam needs a generator with a conscience (for the guard and the flip rates)")
    cases = build_cases(requests, attacks)
    if not cases:
        raise ValueError("redteam: no harmful requests to attack")
    samples = attack_samples(gen, judge, cases, guard, seed, grader)
    injections = list(RESPONSE_INJECTIONS) if injections is None else injections
    report = {
        "asr": asr_table(samples, guard),
        "flip": flip_rates(gen.conscience, flip_pairs(samples, requests), injections),
    }
    return report, samples
