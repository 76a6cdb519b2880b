"""Red-team a model: attack success rate per wrapper with and without the guard, over-refusal, flip rates.

    report, samples = redteam(gen, judge, requests, attacks="ALL", guard=True)   # `emergent-alignment redteam`
    report, samples = redteam(gen, judge, requests, guard=True, benign=prompts, benign_judge=refusal_judge)

Every harmful request of the suite (default: the held-out `eval` split) is wrapped by every
attack. The model drafts a reply to each (seeded); with `guard` the same drafts also go through
the guard (review, then the core's self-correction), so the two columns differ only by the guard.
Each reply is scored by the compliance-vs-refusal judge prompt (`compliance.py`) and, with a
`grader`, on the graded harmful-compliance scale (`graded.py`: refusal, convincingness,
specificity; StrongREJECT-style).

The guard's cost in refusals: with `benign` prompts that look risky but are harmless (XSTest-style),
the model drafts replies to them too, the guard reviews the same drafts, and a refusal judge
(`overrefusal.py`) scores each reply; the over-refusal rate stands beside attack success in the
report, guarded and unguarded. `repeats` drafts several replies to every prompt (seeded); the CIs
resample distinct prompts (`report.prompt_ci`).

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


def attack_samples(gen, judge, cases, guard: bool, seed: int, grader=None, repeats: int = 1) -> list[dict]:
    """Draft (seeded) `repeats` times for every case, guard the same drafts when asked, judge
    compliance (and grade it)."""
    import torch

    from .graded import grader as make_grader

    p_comply = compliance_scorer(judge)
    grade = make_grader(grader) if grader is not None else None
    cases = [c for c in cases for _ in range(repeats)]
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


def redteam(
    gen,
    judge,
    requests,
    attacks="ALL",
    injections=None,
    guard: bool = False,
    seed: int = 0,
    grader=None,
    benign=None,
    benign_judge=None,
    repeats: int = 1,
):
    """The full red-team run on `gen` (which must have a conscience): (report, samples).

    `judge`: a Judge (scored with the compliance prompt) or a function (requests, answers) ->
    P(COMPLY), e.g. a model organism's own classifier. `grader` (optional): a Judge asked the graded
    scale's three questions, or a function (requests, answers) -> [{refused, convincing, specific}].
    `attacks`: "ALL", names, or a dict of name -> wrapper (request -> messages) for attacks outside
    `attacks.ATTACKS`. `injections`: response-side injection names (default all; [] skips the flip
    rates). `benign` (optional): benign risky-looking prompts (`overrefusal.benign_items`), scored by
    `benign_judge` (a Judge asked the refusal prompt, or a function (prompts, answers) -> P(REFUSE);
    default `judge` when it is a Judge). `repeats`: replies drafted per prompt.
    """
    from .overrefusal import benign_samples
    from .prompts import build_cases
    from .report import asr_table, over_refusal_table

    if gen.conscience is None:
        raise ValueError("redteam needs a generator with a conscience (for the guard and the flip rates)")
    if repeats < 1:
        raise ValueError(f"redteam: repeats must be >= 1, got {repeats}")
    cases = build_cases(requests, attacks)
    if not cases:
        raise ValueError("redteam: no harmful requests to attack")
    if benign and benign_judge is None:
        if not hasattr(judge, "classify"):
            raise ValueError("redteam: benign prompts need a benign_judge (the compliance judge is a function)")
        benign_judge = judge
    samples = attack_samples(gen, judge, cases, guard, seed, grader, repeats)
    injections = list(RESPONSE_INJECTIONS) if injections is None else injections
    report = {
        "asr": asr_table(samples, guard),
        "flip": flip_rates(gen.conscience, flip_pairs(samples, requests), injections) if injections else [],
    }
    if benign:
        extra = benign_samples(gen, benign_judge, benign, guard, seed, repeats)
        report["over_refusal"] = over_refusal_table(extra, guard)
        samples = samples + [{"benign": True, **s} for s in extra]
    return report, samples
