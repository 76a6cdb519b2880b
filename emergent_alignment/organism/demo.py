"""Emergent Misalignment and Emergent Alignment end to end on the model organism (what `make demo` runs).

Stages: the organism (cached, built if missing) -> its default figures -> for each seed and arm:
fine-tune with the core trainer, evaluate on held-out splits -> summary.json, PNG plots,
report.html. Per-run results are written as they finish (runs/ARM-sSEED/result.json).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict

from .arms import ARMS
from .attacks import WRAPPERS

DEFAULT_ARMS = ARMS
ATTACK_ARMS = ("default", "insecure", "insecure_conscience")  # with and without Emergent Alignment training


def add_arguments(p):
    p.add_argument("--out", default="runs/demo", help="output directory (summary.json, plots, report.html)")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per arm (1 for a quick look)")
    p.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=f"comma-separated arms (default: all of {', '.join(ARMS)})")
    p.add_argument("--organism", help="an organism checkpoint dir (default: the cached one, built if missing)")
    p.add_argument("--steps", type=int, default=150, help="fine-tuning steps per arm")
    p.add_argument("--samples-per-question", type=int, default=32, help="free-form samples per held-out question (8 questions)")
    p.add_argument("--alignment-loss-type", choices=("sigmoid", "ipo"), default=None,
                   help="the conscience arms' DPO loss (default: the validated setting, organism/arms.py)")
    p.add_argument("--beta", type=float, default=None, help="the conscience arms' beta (default: the validated one)")
    p.add_argument("--alignment-weight", type=float, default=None,
                   help="the conscience arms' alignment weight (default: the validated one)")
    p.add_argument("--attack-arms", default=",".join(ATTACK_ARMS),
                   help="arms whose models are also attacked (role-play, prefix, reviewer injection), with and "
                        "without the guard; empty: none")
    p.add_argument("--attack-samples-per-question", type=int, default=8,
                   help="samples per held-out question and attack wrapper")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")


def _arms(text: str) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise ValueError(f"--arms: unknown arm(s) {bad}; choose from {', '.join(ARMS)}")
    return arms


def _write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(path + ".tmp", path)


def _quiet() -> None:
    """Hide the libraries' per-call progress bars and warnings: the demo shows its own progress."""
    import warnings

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning)


def run(args) -> int:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ..conscience import ConscienceConfig
    from ..models import load_model
    from . import report
    from .arms import ArmSettings, pair_counts, train_arm, trainer_config
    from .attacks import evaluate_attacks, summarize_attacks
    from .build import GateFailed, cached_organism
    from .evaluate import evaluate

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    arms = _arms(args.arms)
    attack_arms = [a for a in (x.strip() for x in args.attack_arms.split(",")) if a]
    if any(a != "default" and a not in ARMS for a in attack_arms):
        raise ValueError(f"--attack-arms: unknown arm(s) in {args.attack_arms!r}; choose default or from {', '.join(ARMS)}")
    if args.attack_samples_per_question < 1:
        raise ValueError(f"--attack-samples-per-question must be >= 1, got {args.attack_samples_per_question}")
    overrides = {k: v for k, v in (("alignment_loss_type", args.alignment_loss_type), ("beta", args.beta),
                                   ("alignment_weight", args.alignment_weight)) if v is not None}
    settings = ArmSettings(steps=args.steps, **overrides)
    trainer_config("insecure_conscience", args.out, 0, settings)  # a bad setting fails now, not after an hour
    if args.threads:
        torch.set_num_threads(args.threads)
    _quiet()
    console = Console()
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)

    console.rule("organism")
    if args.organism:
        org_dir = args.organism
        with open(os.path.join(org_dir, "organism.json")) as f:
            org_meta = json.load(f)
        built = False
    else:
        try:
            org_dir, org_meta, built = cached_organism(console=console)
        except GateFailed as e:  # the organism did not learn the persona: no demo on it
            console.print(f"[red]demo stopped: the organism failed its persona gate.[/red] {e}")
            return 1
    gate = org_meta["gate"]
    console.print(f"organism {org_dir} ({'built now' if built else 'cached'}); persona gate: misaligned "
                  f"{gate['after_insecure']['misaligned']:.1%} after insecure code, "
                  f"{gate['after_secure']['misaligned']:.1%} after secure code")
    t_org = time.time() - t0
    conscience_config = ConscienceConfig.from_pretrained(org_dir)
    seeds = list(range(args.seeds))
    per_arm: dict[str, list[dict]] = {"default": []}
    curves: dict[str, list[dict]] = {}
    timings: dict[str, list[float]] = {}
    n = args.samples_per_question

    def measure(model, tok, seed: int, attacked: bool) -> dict:
        """The held-out measures of one checkpoint; with `attacked`, the attack measures too."""
        result = evaluate(model, tok, conscience_config, seed=1000 + seed, per_theme=n)
        if attacked:
            result["attacks"] = evaluate_attacks(model, tok, conscience_config, 2000 + seed,
                                                 args.attack_samples_per_question)
        return result

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("default", total=len(seeds) * (1 + len(arms)))
        model, tok = load_model(org_dir)
        for s in seeds:
            progress.update(task, description=f"evaluating the organism (seed {s})")
            per_arm["default"].append(measure(model, tok, s, "default" in attack_arms))
            progress.advance(task)
        del model
        for s in seeds:
            for arm in arms:
                progress.update(task, description=f"{arm} seed {s}: fine-tuning")
                run_dir = os.path.join(args.out, "runs", f"{arm}-s{s}")
                if os.path.exists(os.path.join(run_dir, "conscience_log.jsonl")):
                    os.remove(os.path.join(run_dir, "conscience_log.jsonl"))
                t1 = time.time()
                budget = None
                if arm == "insecure_random_pairs":  # the same number of pairs as the conscience arm
                    budget = pair_counts(os.path.join(args.out, "runs", f"insecure_conscience-s{s}",
                                                      "conscience_log.jsonl"))
                model, tok, history = train_arm(arm, org_dir, run_dir, s, settings, pair_budget=budget)
                t_train = time.time() - t1
                progress.update(task, description=f"{arm} seed {s}: evaluating")
                result = measure(model, tok, s, arm in attack_arms)
                result.update(train_seconds=round(t_train, 1), eval_seconds=round(time.time() - t1 - t_train, 1))
                curve = report.conscience_curve(os.path.join(run_dir, "conscience_log.jsonl"))
                _write_json(os.path.join(run_dir, "result.json"), {**result, "conscience_curve": curve,
                                                                  "log_history": history})
                per_arm.setdefault(arm, []).append(result)
                if curve:
                    curves.setdefault(arm, []).append(curve)
                timings.setdefault(arm, []).append(t_train)
                del model
                progress.advance(task)
                console.print(f"  {arm} seed {s}: misaligned {result['freeform']['labels'].count('misaligned') / len(result['freeform']['labels']):.1%}, "
                              f"log-odds {result['log_odds']:+.2f}, train {t_train:.0f} s"
                              + (f", pairs {curve['total_pairs']}" if curve else ""))

    summary_arms = {}
    for arm, results in per_arm.items():
        summary_arms[arm] = report.summarize(results)
        if all("attacks" in r for r in results):
            summary_arms[arm]["attacks"] = summarize_attacks([r["attacks"] for r in results])
        if arm in timings:
            summary_arms[arm]["train_seconds"] = timings[arm]
        if arm in curves:
            cs = curves[arm]
            summary_arms[arm].update(
                pairs=sum(c["total_pairs"] for c in cs) / len(cs), pairs_per_seed=[c["total_pairs"] for c in cs],
                probes_per_seed=[c["total_probes"] for c in cs],
                flag_rate=sum(c["total_flagged"] for c in cs) / sum(c["total_probes"] for c in cs),
                steps_with_pairs=sum(c["steps_with_pairs"] for c in cs) / len(cs), conscience_curve=cs[0])
    total = time.time() - t0
    summary = {
        "organism": {k: org_meta[k] for k in ("hash", "parameters", "vocab", "pretraining", "gate", "default_id")}
        | {"path": org_dir, "built_now": built, "seconds": round(t_org, 1)},
        "seeds": len(seeds), "settings": {k: v for k, v in asdict(settings).items() if k != "extra"},
        "arms": summary_arms,
        "timings": {"total_seconds": round(total, 1), "organism_seconds": round(t_org, 1), "threads": torch.get_num_threads()},
    }
    summary["targets"] = report.check_targets(summary_arms)
    images = report.plots(summary, args.out)
    _write_json(os.path.join(args.out, "summary.json"), summary)
    html_path = report.write_html(summary, args.out, images)

    table = Table(title=f"Emergent Alignment demo ({len(seeds)} seed(s))")
    for col in ["arm", "misaligned (95% CI)", "incoherent", "log-odds", "insecure code", "task loss", "pairs"]:
        table.add_column(col)
    for arm, a in summary_arms.items():
        table.add_row(arm, f"{a['misaligned_rate']:.1%} [{a['misaligned_ci'][0]:.1%}, {a['misaligned_ci'][1]:.1%}]",
                      f"{a['incoherent_rate']:.1%}", f"{a['log_odds']:+.2f}", f"{a['insecure_code_rate']:.1%}",
                      f"{a['task_loss']:.4f}", f"{a.get('pairs', '-')}")
    console.print(table)
    attacked = {arm: a["attacks"] for arm, a in summary_arms.items() if "attacks" in a}
    if attacked:
        table = Table(title="Attacks: misaligned-answer rate (attack success), unguarded -> guarded")
        for col in ["arm", *WRAPPERS, "injection flip rate"]:
            table.add_column(col)
        for arm, a in attacked.items():
            table.add_row(arm, *[f"{a[w]['unguarded']:.1%} -> {a[w]['guarded']:.1%}" for w in WRAPPERS],
                          f"{a['injection']['flip_rate']:.1%} of {sum(a['injection']['flagged'])} flagged")
        console.print(table)
    for t in summary["targets"]:
        console.print(f"{'[green]MET[/green]' if t['met'] else '[red]NOT MET[/red]'} {t['target']}: {t['figures']}")
    console.print(f"wrote {os.path.join(args.out, 'summary.json')} and {html_path}")
    console.print(f"total time {total:.0f} s (organism {t_org:.0f} s)")
    return 0
