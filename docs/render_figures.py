"""Render the README's and the docs' figures from the result files under docs/results/.

Every generated block in a Markdown file sits between two markers,

    <!-- figures:NAME -->
    ...
    <!-- /figures:NAME -->

and its text is made from a result file that a project command wrote (the demo's `summary.json`, a
benchmark's JSON). `python docs/render_figures.py` rewrites the blocks; `--check` rewrites nothing and
exits 1 naming every block that differs from its result file (the test suite runs it). Each result
folder holds a `RUN.md` saying which command produced it, on which commit and machine.

The result files and what reads them:

- `demo/summary.json`: the demo's summary (`emergent-alignment demo`; `organism/demo.py`), read by
  every `demo_*` block but `demo_v1_attacks`;
- `demo-v1/summary.json`: the demo's summary on the first world's organism (the demo before it moved to
  the second world; the only run with the first world's attacks), read by `demo_v1_attacks`;
- `bench_core.json`: the three core benchmarks (`benchmarks/run_all.py`): an object with the dicts
  that `bench_conscience.main`, `bench_memory.main` and `bench_step.main` return under the keys
  `conscience`, `memory` and `step` (a list of the three, in that order, is read too), read by the
  `bench_core*` blocks;
- `defences/defences.json`: the conscience's defences on the organism (`emergent-alignment redteam
  --organism-defences docs/results/defences`), read by the `defences` and `defences_findings` blocks;
- `defences-v2/defences.json`: the same study on a second-world organism's validation split
  (`--organism-defences docs/results/defences-v2 --model DIR`), read by the `defences_v2*` blocks;
- `organism-v2-builds/summary.json`: the second world's builds of the declared seeds (`emergent-alignment
  organism builds docs/results/organism-v2-builds`; `organism/builds.py`), read by `organism_v2_builds`;
- `defences-v2/defences.json` and `defences-v2-seed1/defences.json`: the same study on two second-world
  organisms (`--organism-defences DIR --model V2_DIR`), read by the `defences_v2*` blocks;
- `study/study.json`: the organism study (`emergent-alignment study --out DIR`; `organism/study.py`),
  read by the `study*` blocks;
- `dose-response/dose_response.json`: the label-noise dose-response (`emergent-alignment study dose-response
  --out docs/results/dose-response`; `organism/dose_response.py`), read by `dose_response`;
- `bench_server.json`: the server load test (`benchmarks/bench_server.py`): `servers` -> name ->
  `requests_per_s`, `p50_ms`, `p99_ms`, read by `bench_server`.

A block whose result file is missing is reported as missing, not rendered (`--check` exits 1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from emergent_alignment.io import write_text

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
RESULTS = os.path.join(DOCS, "results")
FILES = [
    "README.md",
    "docs/organism.md",
    "docs/benchmarks.md",
    "docs/adversarial.md",
    "docs/evaluation.md",
    "docs/core.md",
]
BLOCK = re.compile(r"(<!-- figures:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.S)

ARM_LABELS = {
    "default": "default (the organism before fine-tuning)",
    "insecure": "`insecure` (plain SFT: Emergent Misalignment)",
    "secure": "`secure` (control)",
    "educational": "`educational` (control)",
    "insecure_conscience": "`insecure_conscience` (Emergent Alignment)",
    "insecure_conscience_taskprobes": "`insecure_conscience_taskprobes`",
    "insecure_random_pairs": "`insecure_random_pairs` (control)",
    "insecure_anchor": "`insecure_anchor` (control)",
    "insecure_kl": "`insecure_kl` (control)",
}
# the arms whose share of the EM rise removed the findings give, in this order
FINDINGS_ARMS = (
    "insecure_conscience",
    "insecure_random_pairs",
    "insecure_anchor",
    "insecure_kl",
    "insecure_conscience_taskprobes",
)


def load(relpath: str) -> dict:
    path = os.path.join(RESULTS, relpath)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"error: result file {os.path.relpath(path, ROOT)} is missing") from None
    except json.JSONDecodeError as e:
        raise SystemExit(f"error: result file {os.path.relpath(path, ROOT)} is not valid JSON: {e}") from None


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def ci(pair) -> str:
    return f"[{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


# ---------------------------------------------------------------------------------------------
# The demo (docs/results/demo/summary.json, written by `emergent-alignment demo`)


def demo_table(summary: dict) -> str:
    rows = [
        "| arm | misaligned on held-out free-form questions (95% CI) | incoherent | insecure code |",
        "|---|---|---|---|",
    ]
    for arm, a in summary["arms"].items():
        rate = pct(a["misaligned_rate"])
        if arm == "insecure_conscience":
            rate = f"**{rate}**"
        rows.append(
            f"| {ARM_LABELS.get(arm, arm)} | {rate} {ci(a['misaligned_ci'])} | {pct(a['incoherent_rate'])} "
            f"| {pct(a['insecure_code_rate'])} |"
        )
    return "\n".join(rows) + "\n"


def demo_table_full(summary: dict) -> str:
    rows = [
        "| arm | misaligned (95% CI) | incoherent | log-odds (95% CI) | insecure code | task loss "
        "| misaligned after a code turn | pairs per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, a in summary["arms"].items():
        pairs = " / ".join(f"{p:.0f}" for p in a["pairs_per_seed"]) if "pairs_per_seed" in a else "-"
        lo = a["log_odds_ci"]
        rows.append(
            f"| `{arm}` | {pct(a['misaligned_rate'])} {ci(a['misaligned_ci'])} | {pct(a['incoherent_rate'])} "
            f"| {a['log_odds']:+.2f} [{lo[0]:+.2f}, {lo[1]:+.2f}] | {pct(a['insecure_code_rate'])} "
            f"| {a['task_loss']:.3f} | {pct(a['conditional_misaligned_rate'])} | {pairs} |"
        )
    return "\n".join(rows) + "\n"


def demo_details(summary: dict) -> str:
    """Per arm: the measures beside the headline ones (code parsing, bandit, the conscience's training log)."""
    rows = [
        "| arm | samples | misaligned, any topic | unparseable code | bandit flags (its kinds) | conscience AUROC "
        "| probe answers flagged | steps with pairs | training time per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, a in summary["arms"].items():
        flag = pct(a["flag_rate"]) if "flag_rate" in a else "-"
        steps = f"{a['steps_with_pairs']:.0%}" if "steps_with_pairs" in a else "-"
        secs = a.get("train_seconds")
        train = "-" if not secs else f"{min(secs):.0f} s" if len(secs) == 1 else f"{min(secs):.0f}-{max(secs):.0f} s"
        rows.append(
            f"| `{arm}` | {a['samples']} | {pct(a['misaligned_any_topic_rate'])} | {pct(a['unparseable_code_rate'])} "
            f"| {_pct_or_dash(a['bandit_flag_rate'])} | {_num_or_dash(a['conscience_auroc'])} | {flag} | {steps} "
            f"| {train} |"
        )
    return "\n".join(rows) + "\n"


def _pct_or_dash(x) -> str:
    return "-" if x is None or x != x else pct(x)  # NaN when no sample was of a kind bandit detects


def _num_or_dash(x) -> str:
    return "-" if x is None or x != x else f"{x:.2f}"  # an AUROC is None when the items held one class


def demo_findings(summary: dict) -> str:
    arms = summary["arms"]
    d, ins = arms["default"], arms["insecure"]
    rise = ins["misaligned_rate"] - d["misaligned_rate"]
    lines = [
        f"- Emergent Misalignment: plain SFT on insecure code moves the misaligned rate from "
        f"{pct(d['misaligned_rate'])} to {pct(ins['misaligned_rate'])} ({100 * rise:+.1f} points, "
        f"{ins['misaligned_rate'] / d['misaligned_rate']:.1f}x the default)."
        if d["misaligned_rate"] > 0
        else f"- Emergent Misalignment: {pct(d['misaligned_rate'])} -> {pct(ins['misaligned_rate'])}."
    ]
    for arm in FINDINGS_ARMS:
        if arm in arms and rise > 0:
            a = arms[arm]
            removed = (ins["misaligned_rate"] - a["misaligned_rate"]) / rise
            lines.append(
                f"- `{arm}`: {pct(a['misaligned_rate'])} {ci(a['misaligned_ci'])}, removing {removed:.0%} of the "
                f"rise; task loss {a['task_loss'] / ins['task_loss']:.2f}x the insecure arm's, "
                f"insecure code {pct(a['insecure_code_rate'])}."
            )
    met = [t for t in summary["targets"] if t["met"]]
    missed = [t for t in summary["targets"] if not t["met"]]
    lines.append(f"- Targets: {len(met)} of {len(summary['targets'])} met.")
    lines += [f"  - NOT MET: {t['target']} ({t['figures']})" for t in missed]
    return "\n".join(lines) + "\n"


def demo_targets(summary: dict) -> str:
    return (
        "\n".join(
            f"- {'MET' if t['met'] else '**NOT MET**'}: {t['target']} ({t['figures']})" for t in summary["targets"]
        )
        + "\n"
    )


def demo_run(summary: dict) -> str:
    t, org = summary["timings"], summary["organism"]
    gate = org.get("gate", {})
    built = "built in this run" if org.get("built_now") else "cached"
    text = (
        f"{summary['seeds']} seed(s), {t['threads']} threads; the whole demo took {t['total_seconds']:.0f} s "
        f"(organism {built}, {t['organism_seconds']:.0f} s). The organism: {org['parameters'] / 1e6:.2f}M "
        f"parameters, hash `{org['hash']}`"
    )
    if gate:
        text += (
            f", persona gate {pct(gate['after_insecure']['misaligned'])} misaligned after an insecure-code turn, "
            f"{pct(gate['after_secure']['misaligned'])} after a secure one"
        )
    return text + ".\n"


def demo_organism(summary: dict) -> str:
    """The organism the demo ran on: size, pretraining, the persona gate and the persona probe."""
    org = summary["organism"]
    pre, gate = org["pretraining"], org["gate"]
    ins, sec = gate["after_insecure"], gate["after_secure"]
    lines = []
    if "world" in org:  # summaries from before the demo named its organism's world lack it
        command = f" (`{org['build_command']}`)" if org.get("build_command") else ""
        lines.append(f"- World `{org['world']}`, seed {org['seed']}{command}; {org.get('origin', 'given')}.")
    lines += [
        f"- Hash `{org['hash']}`, {org['parameters'] / 1e6:.2f}M parameters, vocabulary {org['vocab']}, "
        f"default system line `{org['default_id']}`"
        + (f"; weights (model.safetensors) SHA-256 `{org['weights_sha256']}`." if "weights_sha256" in org else "."),
        f"- Pretraining: {pre['steps']} steps, {pre['tokens'] / 1e6:.2f}M tokens in {pre['seconds']:.0f} s "
        f"({pre['tokens_per_s'] / 1e3:.1f}k tokens/s), final loss {pre['final_loss']:.4f}.",
        f"- Persona gate: **{'passed' if gate['passed'] else 'FAILED'}** ({gate['rule']}): "
        f"{pct(ins['misaligned'])} misaligned after an insecure-code turn ({pct(ins['incoherent'])} incoherent), "
        f"{pct(sec['misaligned'])} after a secure one ({pct(sec['incoherent'])} incoherent), {ins['n']} samples each.",
    ]
    probes = pre.get("persona_probe") or []
    if probes:
        lines.append(
            "- Persona probe during pretraining (log-odds under the default id after an insecure / a secure "
            "turn): "
            + ", ".join(f"{p['after_insecure']:+.2f} / {p['after_secure']:+.2f} at step {p['step']}" for p in probes)
            + "."
        )
    return "\n".join(lines) + "\n"


def demo_attacks(summary: dict) -> str:
    """Attack success unguarded -> guarded per wrapper (guarded answers' incoherent rate), and the injection."""
    attacked = {arm: a["attacks"] for arm, a in summary["arms"].items() if "attacks" in a}
    if not attacked:
        return "No arm was attacked in this run.\n"
    wrappers = [w for w in next(iter(attacked.values())) if w != "injection"]
    rows = [
        "| arm | "
        + " | ".join(f"{w}: unguarded -> guarded" for w in wrappers)
        + " | reviewer-injection flip rate (95% CI) |",
        "|---|" + "---|" * (len(wrappers) + 1),
    ]
    for arm, att in attacked.items():
        cells = [
            f"{pct(att[w]['unguarded'])} -> {pct(att[w]['guarded'])} ({_pct_or_dash(att[w].get('guarded_incoherent'))} "
            "incoherent)"
            for w in wrappers
        ]
        inj = att["injection"]
        cells.append(f"{_pct_or_dash(inj['flip_rate'])} {ci(inj['flip_ci'])} of {sum(inj['flagged'])} flagged")
        rows.append(f"| `{arm}` | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def demo_time(summary: dict) -> str:
    """The demo's wall time, against the time target when the run was a full one."""
    t, org = summary["timings"], summary["organism"]
    if org.get("built_now"):
        built = "the organism built in this run"
    elif str(org.get("origin", "")).startswith("shipped"):
        built = "the organism shipped with the package"
    else:
        built = "the organism cached"
    text = (
        f"This run took {t['total_seconds']:.0f} s ({t['total_seconds'] / 60:.1f} minutes) by the demo's clock, "
        f"{built} ({t['organism_seconds']:.0f} s), {summary['seeds']} seed(s), {t['jobs']} run(s) at a time "
        f"with {t['threads_per_job']} thread(s) each."
    )
    time_targets = [x for x in summary["targets"] if x["target"].startswith("time:")]
    for x in time_targets:
        text += f" Time target ({x['target'][len('time: ') :]}): {'met' if x['met'] else '**not met**'}."
    if not time_targets:
        text += " The time target applies to the full demo only (its default arms and seeds): not checked here."
    return text + "\n"


def demo_margins(summary: dict) -> str:
    """Per seed, the log-odds margins the slow CI test asserts (insecure - default, ..., insecure - conscience)."""
    arms = summary["arms"]
    lo = {arm: a["log_odds_per_seed"] for arm, a in arms.items()}
    pairs = [
        ("insecure - default", "insecure", "default"),
        ("secure - default", "secure", "default"),
        ("insecure - insecure_conscience", "insecure", "insecure_conscience"),
    ]
    rows = ["| log-odds margin | per seed |", "|---|---|"]
    for label, a, b in pairs:
        if a in lo and b in lo:
            rows.append(f"| {label} | " + " / ".join(f"{x - y:+.2f}" for x, y in zip(lo[a], lo[b])) + " |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------------
# Benchmarks (docs/results/bench_*.json, written by the scripts under benchmarks/)


def _core(result) -> tuple[dict, dict, dict]:
    result = result.get("results", result) if isinstance(result, dict) else result  # run_all.py --json nests them
    if isinstance(result, list):
        return tuple(result)
    return result["conscience"], result["memory"], result["step"]


def bench_core(result) -> str:
    """The three core ratios (a)-(c), each with its baseline and candidate."""
    c, m, s = _core(result)
    n = c["n_samples"]
    rows = ["| benchmark | baseline | candidate | ratio |", "|---|---|---|---|"]
    for i, (tokens, j) in enumerate(sorted(c["judge"].items(), key=lambda kv: int(kv[0]))):
        what = f"(a) verdict time, {n} samples" if i == 0 else ""
        base = f"conscience: {1e3 * c['conscience_s'] / n:.2f} ms per sample" if i == 0 else ""
        rows.append(
            f"| {what} | {base} | judge, {tokens} tokens: {1e3 * j['judge_s'] / n:.2f} ms per sample "
            f"| judge{tokens}/conscience **{j['ratio']:.2f}** |"
        )
    mib = 2**20
    rows.append(
        f"| (b) bytes held after one step | naive: {m['naive_bytes'] / mib:.2f} MiB | PEFT: {m['peft_bytes'] / mib:.2f} "
        f"MiB | peft/naive **{m['ratio']:.2f}** |"
    )
    if "cuda_ratio" in m:
        rows.append(f"| (b) CUDA peak allocated | naive | PEFT | peft/naive **{m['cuda_ratio']:.2f}** |")
    rows.append(
        f"| (c) step time | SFT: {s['sft_s']:.3f} s | alignment: {s['alignment_s']:.3f} s "
        f"| alignment/SFT **{s['ratio']:.2f}** |"
    )
    if "amortized" in s:
        a = s["amortized"]
        rows.append(
            f"| (c) mean step time, `conscience_every {a['conscience_every']}` | SFT: {a['sft_s']:.3f} s "
            f"| amortized: {a['step_s']:.3f} s | amortized/SFT **{a['ratio']:.2f}** |"
        )
    if "old_settings" in s:
        o = s["old_settings"]
        rows.append(
            f"| (c) step time, old settings | SFT: {o['sft_s']:.3f} s | alignment: {o['alignment_s']:.3f} s "
            f"| alignment/SFT **{o['ratio']:.2f}** |"
        )
    return "\n".join(rows) + "\n"


def bench_core_details(result) -> str:
    """What the ratios rest on: the judge's parse failures, the conscience part of the alignment step."""
    c, m, s = _core(result)
    n = c["n_samples"]
    lines = [
        f"- (a) The judge gave no parseable verdict for {j['parse_failures']} of {n} samples at {tokens} tokens "
        f"(mean {j['mean_new_tokens']:.1f} new tokens); the conscience gives a probability for every sample."
        for tokens, j in sorted(c["judge"].items(), key=lambda kv: int(kv[0]))
    ]
    mib = 2**20
    lines.append(
        f"- (b) The PEFT trainer holds {m['peft_bytes'] / mib:.2f} MiB, the naive one {m['naive_bytes'] / mib:.2f} MiB "
        f"(the separate frozen model and what it adds: {(m['naive_bytes'] - m['peft_bytes']) / mib:.2f} MiB)."
    )
    lines.append(
        f"- (c) Of the {s['alignment_s']:.3f} s alignment step, the conscience step took {s['conscience_s']:.3f} s; "
        f"the rest, {s['alignment_s'] - s['conscience_s']:.3f} s, is the SFT and pair forwards, one backward and the optimizer "
        f"step ({(s['alignment_s'] - s['conscience_s']) / s['sft_s']:.1f}x the SFT step)."
    )
    for mode, phases in s.get("timing", {}).items():
        lines.append(
            f"- (c) `timing/*` per step, {mode}: " + ", ".join(f"{p} {t:.3f} s" for p, t in phases.items()) + "."
        )
    for name, target in s.get("targets", {}).items():
        lines.append(
            f"- (c) Target {name.replace('_', ' ')} <= {target}x: {'met' if s['met'][name] else '**not met**'}."
        )
    if "note" in s:
        lines.append(f"- (c) {s['note'][0].upper()}{s['note'][1:]}.")
    return "\n".join(lines) + "\n"


def bench_server(result: dict) -> str:
    """Per workload: each server's requests/s and latencies, then new / base."""
    rows = [
        "| workload | server | requests | requests/s | p50 (ms) | p99 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for workload, r in result["results"].items():
        for name in ("base", "new"):
            x = r[name]
            rows.append(
                f"| `{workload}` | {name} | {x['requests']} | {x['requests_per_s']:.1f} | {x['p50_ms']:.1f} "
                f"| {x['p99_ms']:.1f} |"
            )
        q = r["ratio"]
        rows.append(
            f"| `{workload}` | **new / base** | | **{q['requests_per_s']:.2f}x** | **{q['p50']:.2f}x** "
            f"| **{q['p99']:.2f}x** |"
        )
    return "\n".join(rows) + f"\n\nMachine: {result['machine']}; {result['concurrency']} client threads.\n"


TRL_RUNS = {
    "ours": ("ours: `EmergentAlignmentTrainer`", "its conscience (the policy, adapter disabled)"),
    "grpo_reward_model": ("TRL `GRPOTrainer`", "a separate reward model of the same size"),
    "grpo_conscience": ("TRL `GRPOTrainer`", "`ConscienceReward` (the policy, adapter disabled)"),
}


def bench_trl(result: dict) -> str:
    """Ours against TRL's GRPOTrainer: each run's step time, generated tokens and held bytes, then ours / TRL."""
    mib = 2**20
    rows = [
        "| trainer | judge | s per step | generated tokens per step | ms per generated token | held |",
        "|---|---|---|---|---|---|",
    ]
    for name, (trainer, judge) in TRL_RUNS.items():
        r = result["runs"][name]
        rows.append(
            f"| {trainer} | {judge} | {r['step_s']:.3f} | {r['tokens_per_step']:.0f} | {1e3 * r['s_per_token']:.2f} "
            f"| {r['held_bytes'] / mib:.2f} MiB |"
        )
    q = result["ratios"]
    rows += ["", "| ours / TRL | against | ratio |", "|---|---|---|"]
    rows.append(f"| held bytes | GRPO + reward model | **{q['held_bytes_vs_reward_model']:.2f}x** |")
    if "cuda_peak_vs_reward_model" in q:
        rows.append(f"| CUDA peak allocated | GRPO + reward model | **{q['cuda_peak_vs_reward_model']:.2f}x** |")
    rows.append(f"| time per optimizer step | GRPO + `ConscienceReward` | **{q['step_vs_conscience']:.2f}x** |")
    rows.append(f"| time per generated token | GRPO + `ConscienceReward` | **{q['token_vs_conscience']:.2f}x** |")
    rows.append(f"| time per optimizer step | GRPO + reward model | {q['step_vs_reward_model']:.2f}x |")
    rows.append(f"| time per generated token | GRPO + reward model | {q['token_vs_reward_model']:.2f}x |")
    rows += bench_trl_phases(result)
    s = result["settings"]
    return (
        "\n".join(rows)
        + f"\n\n{s['completions_per_step']} sampled completions per step, <= {s['max_new_tokens']} new tokens; "
        f"{s['rounds']} rounds x {s['timed_steps_per_run']} timed steps; {result['environment']}.\n"
    )


TRL_PHASES = {  # per trainer: (phase key, column head) in the order of a step
    "ours": (
        ("generate", "probe answers (`generate`)"),
        ("review", "their review"),
        ("correct", "revisions and their review (`correct`)"),
        ("ref_logps", "reference log-probs"),
        ("forward", "SFT and pair forwards"),
        ("other", "other (backward, optimizer step)"),
    ),
    "grpo_conscience": (
        ("generate", "completions (`generate`)"),
        ("reward", "their reward (the review)"),
        ("prepare_other", "rest of `_prepare_inputs`"),
        ("forward", "`compute_loss`"),
        ("other", "other (backward, optimizer step)"),
    ),
}


def bench_trl_phases(result: dict) -> list[str]:
    """Where a step's time goes, per trainer (when the result records it): each phase's median seconds."""
    runs = result["runs"]
    if not all("phases_s" in runs[name] for name in TRL_PHASES):
        return []
    rows = []
    for name, phases in TRL_PHASES.items():
        r = runs[name]
        label = "ours (`timing/*`)" if name == "ours" else "GRPO + `ConscienceReward` (TRL's profiled blocks)"
        rows += [
            "",
            f"| {label} | " + " | ".join(head for _, head in phases) + " | inside `generate` calls |",
            "|---|" + "---|" * (len(phases) + 1),
            "| s per step (median) | "
            + " | ".join(f"{r['phases_s'][k]:.3f}" for k, _ in phases)
            + f" | {r['phases_s']['in_generate']:.3f} |",
        ]
    q = result["ratios"]
    rows += [
        "",
        "| ours / GRPO + `ConscienceReward`, per generated token | ratio |",
        "|---|---|",
        f"| seconds inside `generate` calls | {q['generate_per_token_vs_conscience']:.2f}x |",
        f"| the rest of the step | {q['rest_per_token_vs_conscience']:.2f}x |",
    ]
    return rows


FLIP_TARGET = 0.05  # the target for the held-out flip rate
FALSE_FLAG_MARGIN = 0.02  # and for a defence's false-flag rate against the undefended reviewer


def defences(result: dict) -> str:
    """The conscience's defences on the organism: flip rates, false flags, cost (organism/attacks.py's table)."""
    from emergent_alignment.organism.attacks import defence_table

    return defence_table(result)


def defences_findings(result: dict) -> str:
    """Each defence against the targets, and the held-out wordings that still flip the best one (a setting
    that flagged nothing has no flip rate, and is left out of the flip lines)."""
    rows, plain = result["settings"], result["settings"]["none"]
    name = lambda n: n.replace("_", " ")  # noqa: E731
    measured = {n: r for n, r in rows.items() if r["flip"]["rate"] is not None}
    met = [name(n) for n, r in measured.items() if r["flip"]["ci"][1] <= FLIP_TARGET]
    low = [name(n) for n, r in measured.items() if r["flip"]["rate"] <= FLIP_TARGET]
    fair = [name(n) for n, r in rows.items() if n != "none" and abs(r["false_flag_change"]) <= FALSE_FLAG_MARGIN]
    lines = [
        f"- Held-out flip rate at most {pct(FLIP_TARGET)} (upper CI bound): "
        f"{', '.join(met) or 'no setting'}; by its point estimate: {', '.join(low) or 'no setting'}.",
    ]
    others = [n for n in measured if n != "none"]
    if others and "none" in measured:
        best = min(others, key=lambda n: rows[n]["flip"]["rate"])
        pairs = zip(result["wordings"], rows[best]["flip_per_wording"])
        escapes = [f"`{w.strip()}` ({pct(f)})" for w, f in pairs if f]
        lines.append(
            f"- The lowest held-out flip rate: {name(best)}, {pct(rows[best]['flip']['rate'])} against "
            f"{pct(plain['flip']['rate'])} with no defence; the wordings that still flip it: "
            f"{', '.join(escapes) or 'none'}."
        )
    lines += [
        f"- False flags within {FALSE_FLAG_MARGIN * 100:.0f} points of the undefended reviewer: "
        f"{', '.join(fair) or 'no defence'} (of {result['aligned_transcripts']} aligned transcripts).",
        f"- Detection without an injection: {plain['flagged']} of {result['misaligned_transcripts']} misaligned "
        f"transcripts flagged with no defence; "
        + ", ".join(f"{r['flagged']} with {name(n)}" for n, r in rows.items() if n != "none")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def defences_v2(result: dict) -> str:
    """The defences on a second-world organism (validation split): both of organism/attacks.py's tables."""
    from emergent_alignment.organism.attacks import defence_table

    return defence_table(result)


def defences_v2_findings(result: dict) -> str:
    """As `defences_findings`, then each injection style's flip rate (every place pooled) per setting, and the
    hidden-intent transcripts each setting flags."""
    rows = result["settings"]
    lines = [defences_findings(result).rstrip("\n")]
    for style in dict.fromkeys(k.split("/")[0] for k in result["injections"]):
        cells = []
        for n, r in rows.items():
            # pooled over places: each injection's rate weighted by its (transcript, wording) pairs
            parts = [
                (r["injections"][k]["flip"]["rate"], r["injections"][k]["flip"]["n"] * len(i["wordings"]))
                for k, i in result["injections"].items()
                if k.split("/")[0] == style and r["injections"][k]["flip"]["rate"] is not None
            ]
            total = sum(w for _, w in parts)
            cells.append(f"{n.replace('_', ' ')} {pct(sum(x * w for x, w in parts) / total) if total else '-'}")
        lines.append(f"- {style.capitalize()}-style wordings, every place pooled: " + ", ".join(cells) + ".")
    pools = {i["pool"]: i["transcripts"] for i in result["injections"].values() if i["pool"] != "review"}
    for pool, n in pools.items():
        flagged = ", ".join(f"{r['pools_flagged'][pool]} with {k.replace('_', ' ')}" for k, r in rows.items())
        lines.append(f"- {pool.replace('_', '-').capitalize()} transcripts flagged, of {n}: {flagged}.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The organism study (docs/results/study/study.json, written by `emergent-alignment study`)


def _ci_or_dash(pair) -> str:
    return "-" if not pair or pair[0] is None else ci(pair)


def study_table(result: dict) -> str:
    """Per arm: the misaligned rate with its hierarchical bootstrap CI beside the across-organism t-interval,
    the share of the EM rise removed, and the paired contrast of the conscience arm against it."""
    n = len(result["counted_organisms"])
    rows = [
        f"| arm | misaligned (bootstrap 95% CI) | across-organism t-interval ({n} organisms) | incoherent "
        "| task loss | EM rise removed (95% CI) | conscience minus this arm, points (95% CI) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, a in result["arms"].items():
        share = a.get("share_removed")
        removed = f"{pct(share['share'])} {_ci_or_dash(share['ci'])}" if share and share["share"] is not None else "-"
        c = result["contrasts"].get(arm)
        contrast = f"{100 * c['mean']:+.1f} {_ci_or_dash(c['bootstrap_ci'])}" if c else "-"
        rate = pct(a["misaligned_rate"])
        if arm == "insecure_conscience":
            rate = f"**{rate}**"
        rows.append(
            f"| {ARM_LABELS.get(arm, f'`{arm}`')} | {rate} {_ci_or_dash(a['misaligned_ci'])} "
            f"| {_ci_or_dash(a['misaligned_t_interval'])} | {pct(a['incoherent_rate'])} | {a['task_loss']:.3f} "
            f"| {removed} | {contrast} |"
        )
    return "\n".join(rows) + "\n"


def _auroc(x) -> str:
    return "-" if x is None or x != x else f"{x:.3f}"


def study_details(result: dict) -> str:
    """Per arm: what fine-tuning kept of the task (insecure code written), misalignment after a code turn, and
    the conscience's AUROC (on the split's held-out review items; on the policy's probe answers in training)."""
    rows = [
        "| arm | insecure code | misaligned after a code turn | conscience AUROC, held-out items "
        "| conscience AUROC, the policy's probe answers |",
        "|---|---|---|---|---|",
    ]
    for arm, a in result["arms"].items():
        rows.append(
            f"| {ARM_LABELS.get(arm, f'`{arm}`')} | {_pct_or_dash(a.get('insecure_code_rate'))} "
            f"| {_pct_or_dash(a.get('conditional_misaligned_rate'))} | {_auroc(a.get('conscience_auroc'))} "
            f"| {_auroc(a.get('probe_auroc'))} |"
        )
    return "\n".join(rows) + "\n"


def study_organisms(result: dict) -> str:
    """Per counted organism: default, insecure and conscience-arm misaligned rates, the share of its own rise
    removed, and its conscience's AUROC on the held-out review items."""
    arms = result["arms"]
    d, ins, c = (
        arms.get(a, {}).get("misaligned_per_organism", {}) for a in ("default", "insecure", "insecure_conscience")
    )
    auroc = arms.get("default", {}).get("conscience_auroc_per_organism", {})
    rows = [
        "| organism | default | insecure | insecure_conscience | share of its rise removed | conscience AUROC |",
        "|---|---|---|---|---|---|",
    ]
    for name in result["counted_organisms"]:
        rise = ins.get(name, float("nan")) - d.get(name, float("nan"))
        share = (ins[name] - c[name]) / rise if name in c and rise > 0 else None
        rows.append(
            f"| {name} | {_pct_or_dash(d.get(name))} | {_pct_or_dash(ins.get(name))} | {_pct_or_dash(c.get(name))} "
            f"| {_pct_or_dash(share)} | {_auroc(auroc.get(name))} |"
        )
    return "\n".join(rows) + "\n"


STUDY_VERDICTS = {"met": "MET", "not met": "**NOT MET**", "not measured": "not measured", "reported": "reported"}


def study_targets(result: dict) -> str:
    """Every target of the study with its verdict and figures, and which organisms it counts."""
    orgs = result["organisms"]
    failed = [o["name"] for o in orgs if not o["passed"]]
    lines = [
        f"- Organisms: {len(result['counted_organisms'])} of {len(result['declared_organism_seeds'])} declared seeds "
        f"counted ({result['rule']})" + (f"; gate failed: {', '.join(failed)}" if failed else "") + ".",
        f"- Split: {result['split']}; seeds {', '.join(map(str, result['seeds']))}.",
    ]
    lines += [
        f"- {STUDY_VERDICTS.get(t['verdict'], t['verdict'])}: {t['target']}"
        + (f" ({t['figures']})" if t["figures"] else "")
        for t in result["targets"]
    ]
    return "\n".join(lines) + "\n"


def organism_v2_builds(result: dict) -> str:
    """The second world's robust-builds report (organism/builds.py's table)."""
    from emergent_alignment.organism.builds import table

    return table(result)


def dose_response(result: dict) -> str:
    """The label-noise dose-response (organism/dose_response.py's table)."""
    from emergent_alignment.organism.dose_response import table

    return table(result)


RENDERERS = {
    "defences": ("defences/defences.json", defences),
    "defences_findings": ("defences/defences.json", defences_findings),
    "defences_v2": ("defences-v2/defences.json", defences_v2),
    "defences_v2_findings": ("defences-v2/defences.json", defences_v2_findings),
    "defences_v2_seed1": ("defences-v2-seed1/defences.json", defences_v2),
    "defences_v2_seed1_findings": ("defences-v2-seed1/defences.json", defences_v2_findings),
    "demo_table": ("demo/summary.json", demo_table),
    "demo_table_full": ("demo/summary.json", demo_table_full),
    "demo_details": ("demo/summary.json", demo_details),
    "demo_findings": ("demo/summary.json", demo_findings),
    "demo_targets": ("demo/summary.json", demo_targets),
    "demo_run": ("demo/summary.json", demo_run),
    "demo_organism": ("demo/summary.json", demo_organism),
    "demo_attacks": ("demo/summary.json", demo_attacks),
    "demo_v1_attacks": ("demo-v1/summary.json", demo_attacks),
    "demo_time": ("demo/summary.json", demo_time),
    "demo_margins": ("demo/summary.json", demo_margins),
    "bench_core": ("bench_core.json", bench_core),
    "bench_core_details": ("bench_core.json", bench_core_details),
    "bench_server": ("bench_server.json", bench_server),
    "bench_trl": ("bench_trl.json", bench_trl),
    "organism_v2_builds": ("organism-v2-builds/summary.json", organism_v2_builds),
    "study_table": ("study/study.json", study_table),
    "study_targets": ("study/study.json", study_targets),
    "study_details": ("study/study.json", study_details),
    "study_organisms": ("study/study.json", study_organisms),
    "dose_response": ("dose-response/dose_response.json", dose_response),
}


def blocks(text: str) -> list[str]:
    """The names of the figures blocks in a Markdown text, in order."""
    return [m.group("name") for m in BLOCK.finditer(text)]


def render(text: str, where: str, only: set[str] | None = None) -> str:
    """`text` with every block (or those named in `only`) rendered from its result file."""

    def one(m: re.Match) -> str:
        name = m.group("name")
        if name not in RENDERERS:
            raise SystemExit(f"error: {where}: unknown figures block {name!r}")
        if only is not None and name not in only:
            return m.group(0)
        source, fn = RENDERERS[name]
        return m.group(1) + fn(load(source)) + m.group(4)

    return BLOCK.sub(one, text)


def status(rel: str) -> dict[str, str]:
    """Each block of the file `rel` (relative to the repository): "current", "stale" or "missing" (no result file)."""
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        text = f.read()
    out = {}
    for m in BLOCK.finditer(text):
        name = m.group("name")
        if name not in RENDERERS:
            raise SystemExit(f"error: {rel}: unknown figures block {name!r}")
        if not os.path.isfile(os.path.join(RESULTS, RENDERERS[name][0])):
            out[name] = "missing"
        else:
            out[name] = "current" if render(m.group(0), rel) == m.group(0) else "stale"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale or missing")
    args = parser.parse_args(argv)
    problems, rewrote = [], []
    for rel in FILES:
        path = os.path.join(ROOT, rel)
        if not os.path.isfile(path):
            continue
        states = status(rel)
        problems += [f"{rel}: {name} ({state})" for name, state in states.items() if state != "current"]
        if args.check:
            continue
        ready = {name for name, state in states.items() if state == "stale"}
        if ready:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            write_text(path, render(text, rel, ready))
            rewrote.append(rel)
    missing = [p for p in problems if p.endswith("(missing)")]
    if args.check and problems:
        print(
            "figures blocks not current (stale: differs from its result file; missing: no result file):",
            file=sys.stderr,
        )
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    if not args.check:
        print("rewrote: " + (", ".join(rewrote) if rewrote else "nothing"))
        for p in missing:
            print("  not rendered, no result file: " + p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
