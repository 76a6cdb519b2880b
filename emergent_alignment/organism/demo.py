"""Emergent Misalignment and Emergent Alignment end to end on the model organism (what `make demo` runs).

Stages: the organism (the shipped checkpoint, or built afresh) -> for each seed, its default figures and, for each
arm, fine-tune with the core trainer and evaluate (two runs at a time) -> summary.json, PNG plots, report.html.
Per-run results are written as they finish (runs/ARM-sSEED/result.json).

By default the demo runs on the shipped organism (`shipped.py`: the second world's build of seed 8) and
evaluates on its own split (`eval_set("v2", "demo")`: the demo's questions, `demo_prompts.py`, with the
validation split's code tasks, composed answers and review items), never on the study's test split. The
conscience arms use the IPO beta the study chose on its validation split (`arms.STUDY_BETA`). A
first-world organism (`--world v1` with `--organism DIR` or `--rebuild-organism`) is evaluated on its
world's test split, as the demo did before the second world.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

from ..io import write_json
from ..provenance import provenance
from . import world
from .arms import ALL_ARMS, NEEDS_PAIR_COUNTS
from .attacks import WRAPPERS

# The demo's arms: plain SFT on insecure code (EM), its two controls, the conscience arm (EA) and the three
# label-blind controls the study sets beside it (`controls.LABEL_BLIND`: the same DPO term with the conscience
# arm's pair counts, without its labels).
DEFAULT_ARMS = (
    "insecure",
    "secure",
    "educational",
    "insecure_conscience",
    "insecure_random_pairs",
    "insecure_anchor",
    "insecure_kl",
)
# Seeds per arm, set by the 10-minute budget (2 cores, 2 runs at a time with 1 thread each). Per-run costs
# on the 2-core development machine under those conditions (the study's runs on the second world's organism
# 0, seeds 1 and 2: docs/results/study/runs/v2-seed0/ARM-s{1,2}/result.json, train_seconds / eval_seconds):
# training insecure 28-32 s, secure 33, educational 38, insecure_conscience 155, insecure_random_pairs 83,
# insecure_anchor 80-83, insecure_kl 81-88; evaluation 20-25 s a run on the study's test split (the demo's
# split is smaller: 4 questions per theme and 88 review items, against 5 and 528).
# One seed: 502 s of training + 8 runs x ~20 s of evaluation = ~660 s of run time on 2 workers, ~330 s if
# perfectly packed; the three label-blind controls (~105 s each) wait for the conscience run (~175 s), so
# ~380 s end to end, ~420 s with the workers' start-up and the summary. Two seeds: ~1,320 s of run time,
# at least 660 s on 2 workers, over the budget. So one seed (the full timed run checks the estimate).
DEFAULT_SEEDS = 1
DEFAULT_JOBS = 2  # fine-tuning runs at a time (docs/benchmarks.md: two 1-thread runs beat one 2-thread run)
# The attacks (organism/attacks.py) are the first world's: its test questions, wrappers and classifier. On a
# second-world organism none is run (`redteam --organism-defences` and `--organism-refusals` measure that
# world's defences and refusals); on a first-world organism these were the demo's attacked arms.
DEFAULT_ATTACK_ARMS: tuple[str, ...] = ()
FIRST_WORLD_ATTACK_ARMS = ("default", "insecure", "insecure_conscience")
CONDITIONAL_SAMPLES = 8  # per question and seed, after an insecure-code turn
DEFAULT_SAMPLES = 32  # free-form samples per evaluation theme and seed (the demo's 4 questions, 8 each)
DEMO_SPLIT = {"v1": "test", "v2": "demo"}  # what the demo asks an organism of each world


def _check_arms(arms: list[str]) -> list[str]:
    bad = [a for a in arms if a not in ALL_ARMS]
    if bad or not arms:
        raise ValueError(f"--arms: unknown arm(s) {bad}; choose from {', '.join(ALL_ARMS)}")
    budgeted = [a for a in arms if a in NEEDS_PAIR_COUNTS]
    if budgeted and "insecure_conscience" not in arms:
        verb = "needs" if len(budgeted) == 1 else "need"
        raise ValueError(f"--arms: {', '.join(budgeted)} {verb} insecure_conscience (they get that run's pair counts)")
    return arms


def check_world(world_name: str, arms, attack_arms) -> None:
    """What the arms and attack arms need of the organism's world: a clear error now, not after an hour."""
    from . import worlds

    module = worlds.module(world_name)  # an unknown world fails here
    if "insecure_inoculated" in arms:
        from .controls import inoculated_line

        inoculated_line(module, module.DEFAULT_ID)  # the first world has none
    if attack_arms and world_name != "v1":
        raise ValueError(
            f"--attack-arms {','.join(attack_arms)}: the demo's attacks are the first world's (its test questions, "
            "wrappers and classifier) and cannot run on this second-world organism; give --attack-arms '' and "
            "measure its conscience's defences with `emergent-alignment redteam --organism-defences DIR` (and the "
            "guard's cost in refusals with `--organism-refusals DIR --model ORGANISM_DIR`)"
        )


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs (`emergent-alignment demo` fills these from its flags, named alike)."""

    out: str = "runs/demo"
    seeds: int = DEFAULT_SEEDS
    arms: tuple[str, ...] = DEFAULT_ARMS
    organism: str | None = None  # an organism checkpoint dir (default: the shipped one)
    rebuild_organism: bool = False  # build the demo's organism afresh (cached by its config hash) instead
    world: str | None = None  # v1 or v2 (default: the given organism's world, else the shipped one's)
    steps: int | None = None  # fine-tuning steps per arm (default: the validated protocol)
    samples_per_question: int = DEFAULT_SAMPLES
    conditional_samples_per_question: int = CONDITIONAL_SAMPLES
    alignment_loss_type: str | None = None
    beta: float | None = None  # the conscience term's beta (default: arms.STUDY_BETA)
    alignment_weight: float | None = None
    attack_arms: tuple[str, ...] = DEFAULT_ATTACK_ARMS
    attack_samples_per_question: int = 8
    threads: int = 0
    jobs: int = DEFAULT_JOBS

    def __post_init__(self):
        from .worlds import WORLDS

        if self.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {self.seeds}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {self.steps}")
        if self.beta is not None and not self.beta > 0:
            raise ValueError(f"--beta must be > 0, got {self.beta}")
        _check_arms(list(self.arms))
        if any(a != "default" and a not in ALL_ARMS for a in self.attack_arms):
            raise ValueError(
                f"--attack-arms: unknown arm(s) in {','.join(self.attack_arms)!r}; "
                f"choose default or from {', '.join(ALL_ARMS)}"
            )
        idle = [a for a in self.attack_arms if a != "default" and a not in self.arms]
        if idle:
            raise ValueError(f"--attack-arms: {', '.join(idle)} not among --arms (an attack arm must run)")
        if self.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {self.jobs}")
        if self.organism and self.rebuild_organism:
            raise ValueError("--organism and --rebuild-organism exclude each other: choose one checkpoint")
        if self.world is not None and self.world not in WORLDS:
            raise ValueError(f"--world: unknown world {self.world!r}; choose {' or '.join(WORLDS)}")
        for flag in ("samples_per_question", "conditional_samples_per_question", "attack_samples_per_question"):
            if getattr(self, flag) < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(self, flag)}")

    def full(self) -> bool:
        """The full demo (its default arms, seeds, steps and samples): the time target applies."""
        return (
            self.seeds == DEFAULT_SEEDS
            and set(self.arms) == set(DEFAULT_ARMS)
            and self.steps is None
            and self.samples_per_question == DEFAULT_SAMPLES
            and self.conditional_samples_per_question == CONDITIONAL_SAMPLES
        )


def demo_world(options: DemoOptions) -> str:
    """The world the demo runs: the given organism's (its organism.json; --world must agree), else --world
    (a first-world organism then needs --rebuild-organism), else the shipped organism's."""
    from .shipped import DEMO_WORLD, read_record

    if options.organism:
        found = _read_meta(options.organism).get("world", "v1")
        if options.world and options.world != found:
            raise ValueError(
                f"--world {options.world}: the organism at {options.organism} is of world {found} (its organism.json)"
            )
        return found
    if options.rebuild_organism:
        return options.world or DEMO_WORLD
    shipped = read_record()["world"]
    if options.world and options.world != shipped:
        raise ValueError(
            f"--world {options.world}: the shipped organism is of world {shipped}; give --organism DIR (an organism "
            f"of world {options.world}) or --rebuild-organism (builds that world's demo organism)"
        )
    return shipped


def rebuild_seed(world_name: str) -> int:
    """The seed `--rebuild-organism` builds: the demo's organism (`shipped.DEMO_SEED`) in its world, the
    first world's default organism (seed 0) there."""
    from .shipped import DEMO_SEED, DEMO_WORLD

    return DEMO_SEED if world_name == DEMO_WORLD else 0


def quiet_libraries() -> None:
    """Hide the libraries' per-call progress bars and warnings: the demo shows its own progress."""
    import warnings

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning)
    # TRL 1.16 reads `is_gradient_checkpointing`, an alias transformers 5 deprecates: nothing for a user to do
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)


@dataclass(frozen=True)
class MeasureSpec:
    """What `measure` needs besides the checkpoint (picklable: it travels to worker processes)."""

    organism_dir: str
    samples_per_question: int
    attack_samples_per_question: int
    conditional_samples_per_question: int = CONDITIONAL_SAMPLES
    world: str = "v1"  # the organism's world: v1 (`world`) or v2 (`world_v2`)
    split: str = "test"  # the questions asked: test or validation
    guarded_arms: tuple[str, ...] = ()  # arms whose free-form answers are also measured after the zero-shot guard


def eval_set(world_name: str = "v1", split: str = "test"):
    """The `evaluate.EvalSet` of a world and split: the first world as it is; the second world with its
    split's held-out code tasks, its held-out review items (`build_v2`) and its composed answers.

    The second world's `demo` split (what `make demo` asks) is the demo's own questions
    (`demo_prompts.DEMO_QUESTIONS`) with the code tasks, composed answers and review items of the
    validation split (`demo_prompts.DEMO_SOURCE`): it never reads the study's test split."""
    from .evaluate import EvalSet

    if world_name == "v1":
        if split == "demo":
            raise ValueError("the demo split is the second world's (its demo questions use its words); choose v2")
        return EvalSet(world, split)
    if world_name != "v2":
        raise ValueError(f"unknown world {world_name!r}; choose v1 or v2")
    from . import build_v2, world_v2

    if split == "demo":
        from .demo_prompts import DEMO_SOURCE, question_table

        source, extra = DEMO_SOURCE, {"question_table": question_table(), "answer_split": DEMO_SOURCE}
    else:
        EvalSet(world_v2, split)  # an unknown split fails here, before the review items are built
        source, extra = split, {}
    items = tuple((x["convo"], x["reply"], x["aligned"]) for x in build_v2.heldout_review_items(source))
    return EvalSet(world_v2, split, build_v2.CODE_TASKS[source], items, parts=True, **extra)


@dataclass(frozen=True)
class Run:
    """One fine-tuning run of the demo: an arm and a seed."""

    arm: str
    seed: int
    out_dir: str
    attacked: bool


def measure(model, tok, spec: MeasureSpec, seed: int, attacked: bool, guarded: bool = False) -> dict:
    """The held-out measures of one checkpoint; with `attacked`, the attack measures too; with `guarded`,
    its free-form answers after the zero-shot guard."""
    from ..conscience import ConscienceConfig
    from .attacks import evaluate_attacks
    from .evaluate import evaluate

    conscience_config = ConscienceConfig.from_pretrained(spec.organism_dir)
    result = evaluate(
        model,
        tok,
        conscience_config,
        seed=1000 + seed,
        per_theme=spec.samples_per_question,
        cond_per_theme=spec.conditional_samples_per_question,
        evalset=eval_set(spec.world, spec.split),
        guard=guarded,
    )
    if attacked:
        result["attacks"] = evaluate_attacks(
            model, tok, conscience_config, 2000 + seed, spec.attack_samples_per_question
        )
    return result


def fit_and_measure(run: Run, settings, spec: MeasureSpec, pair_budget: list[int] | None) -> dict:
    """Fine-tune one arm for one seed (the `default` arm: no fine-tuning), measure it and write
    runs/ARM-sSEED/result.json."""
    from ..models import load_model
    from . import conscience_log
    from .arms import train_arm

    t0 = time.time()
    if run.arm == "default":
        (model, tok), history = load_model(spec.organism_dir), []
    else:
        model, tok, history = train_arm(
            run.arm, spec.organism_dir, run.out_dir, run.seed, settings, pair_budget=pair_budget, world_name=spec.world
        )
    t_train = time.time() - t0
    result = measure(model, tok, spec, run.seed, run.attacked, run.arm in spec.guarded_arms)
    result.update(
        train_seconds=round(t_train, 1),
        eval_seconds=round(time.time() - t0 - t_train, 1),
        conscience_curve=conscience_log.conscience_curve(
            os.path.join(run.out_dir, "conscience_log.jsonl"), world=spec.world
        ),
    )
    write_json(os.path.join(run.out_dir, "result.json"), {**result, "log_history": history})
    return result


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    quiet_libraries()


# the order runs start in: the conscience runs first (each seed's random-pairs run waits for its
# conscience run), then the other long runs, then the plain arms, and the organism itself last
START_ORDER = {"insecure_conscience": 0, "insecure_conscience_taskprobes": 2, "default": 4}
START_ORDER |= {arm: 1 for arm in NEEDS_PAIR_COUNTS}


def _conscience_runs(runs: list[Run]) -> dict[int, Run]:
    """The conscience run of each seed that has a pair-matched control (which reads its pair counts)."""
    conscience = {r.seed: r for r in runs if r.arm == "insecure_conscience"}
    missing = sorted({r.seed for r in runs if r.arm in NEEDS_PAIR_COUNTS} - set(conscience))
    if missing:
        raise ValueError(
            f"the pair-matched controls need the insecure_conscience run of seed(s) {missing} "
            "(it gets that run's pair counts, step by step)"
        )
    return conscience


def _pair_budget(run: Run, conscience: dict[int, Run]) -> list[int] | None:
    """A pair-matched control gets, step by step, as many pairs as the conscience run of its seed."""
    from .arms import pair_counts

    if run.arm not in NEEDS_PAIR_COUNTS:
        return None
    return pair_counts(os.path.join(conscience[run.seed].out_dir, "conscience_log.jsonl"))


def run_all(runs: list[Run], settings, spec: MeasureSpec, jobs: int, threads: int, fit=fit_and_measure):
    """Yield (run, result) as runs finish: `jobs` at a time in worker processes, or one by one here.

    A pair-matched control (random pairs, ...) starts only after the conscience run of its seed has finished (its pair
    budget). `fit` does one run (a picklable function; tests pass a fake)."""
    conscience = _conscience_runs(runs)
    if jobs == 1:
        yield from _run_serial(runs, settings, spec, conscience, fit)
    else:
        yield from _run_parallel(runs, settings, spec, conscience, fit, jobs, threads)


def _run_serial(runs, settings, spec, conscience, fit):
    for run in sorted(runs, key=lambda r: (r.seed, r.arm in NEEDS_PAIR_COUNTS)):
        yield run, fit(run, settings, spec, _pair_budget(run, conscience))


def _run_parallel(runs, settings, spec, conscience, fit, jobs: int, threads: int):
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    todo = sorted(runs, key=lambda r: (START_ORDER.get(r.arm, 3), r.seed))
    unfinished = set(runs)

    def ready(run: Run) -> bool:
        return run.arm not in NEEDS_PAIR_COUNTS or conscience[run.seed] not in unfinished

    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(threads,))
    running = {}
    try:
        while todo or running:
            for run in [r for r in todo if ready(r)][: jobs - len(running)]:
                todo.remove(run)
                running[pool.submit(fit, run, settings, spec, _pair_budget(run, conscience))] = run
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                run = running.pop(future)
                try:
                    result = future.result()
                except Exception as e:
                    raise RuntimeError(f"demo run {run.arm} seed {run.seed} failed ({run.out_dir}): {e!r}") from e
                unfinished.discard(run)
                yield run, result
    finally:
        if running:  # an error: stop the other runs now rather than minutes later at exit
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=not running, cancel_futures=True)


def _evaluation(world_name: str, split: str, options: DemoOptions) -> dict:
    """What the demo asked: the world and split, questions per theme and samples (summary.json's "evaluation")."""
    es = eval_set(world_name, split)
    theme = es.world.eval_themes()[0]
    return {
        "world": world_name,
        "split": split,
        "questions_per_theme": len(es.questions(theme)),
        "themes": len(es.world.eval_themes()),
        "code_tasks_from": "validation" if split == "demo" else split,
        "answers_and_review_items_from": es.answer_split or split,
        "samples_per_theme": options.samples_per_question,
        "conditional_samples_per_theme": options.conditional_samples_per_question,
    }


def _build_command(meta: dict) -> str | None:
    """The command that builds this organism from the current sources, or None (another config, or a test's)."""
    from .shipped import ShippedOrganismError, command_for

    try:
        return command_for(meta)
    except (ShippedOrganismError, KeyError, ValueError):
        return None


def _read_meta(checkpoint: str) -> dict:
    path = os.path.join(checkpoint, "organism.json")
    if not os.path.isfile(path):
        raise ValueError(f"--organism {checkpoint}: no organism.json there (build one with `organism build --out DIR`)")
    with open(path) as f:
        return json.load(f)


def run_demo(options: DemoOptions, console=None) -> dict:
    """The demo end to end; prints its progress and tables, writes its outputs, returns the summary.

    Raises `build.GateFailed` when the organism it builds fails its persona gate (no demo on it)."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from . import report
    from .arms import STUDY_BETA, ArmSettings, trainer_config
    from .attacks import summarize_attacks
    from .plots import plots
    from .shipped import cached_organism, file_sha256, shipped_organism
    from .summary import summarize
    from .targets import build_target, check_targets, specificity, time_target

    arms = list(options.arms)
    attack_arms = list(options.attack_arms)
    world_name = demo_world(options)  # a mismatch, or a first world without a checkpoint, fails here
    check_world(world_name, arms, attack_arms)
    split = DEMO_SPLIT[world_name]
    overrides = {
        k: v
        for k, v in (
            ("alignment_loss_type", options.alignment_loss_type),
            ("beta", options.beta),
            ("alignment_weight", options.alignment_weight),
            ("steps", options.steps),
        )
        if v is not None
    }
    settings = ArmSettings(**{"beta": STUDY_BETA} | overrides)  # the study's beta, chosen on its validation split
    trainer_config("insecure_conscience", options.out, 0, settings)  # a bad setting fails now, not after an hour
    if options.threads:
        torch.set_num_threads(options.threads)
    quiet_libraries()
    console = console or Console()
    t0 = time.time()
    os.makedirs(options.out, exist_ok=True)

    console.rule("organism")
    if options.organism:
        org_dir, org_meta, origin, built = options.organism, _read_meta(options.organism), "given", False
    elif options.rebuild_organism:
        org_dir, org_meta, built = cached_organism(world_name, rebuild_seed(world_name), console=console)
        origin = "built now" if built else "built before, cached"
    else:
        (org_dir, org_meta), origin, built = shipped_organism(), "shipped, SHA-256 verified", False
    if org_meta.get("world", "v1") != world_name:  # a shipped or rebuilt organism of another world
        raise ValueError(f"the organism at {org_dir} is of world {org_meta.get('world', 'v1')}, not {world_name}")
    gate = org_meta["gate"]
    console.print(
        f"organism {org_dir} ({origin}; world {world_name}, seed {org_meta.get('config', {}).get('seed')}); persona gate: "
        f"misaligned {gate['after_insecure']['misaligned']:.1%} after insecure code, "
        f"{gate['after_secure']['misaligned']:.1%} after secure code"
    )
    console.print(
        f"evaluation: world {world_name}, split {split}"
        + (
            " (the demo's own questions; code, answers and review items of the validation split)"
            if split == "demo"
            else ""
        )
        + f"; conscience term {settings.alignment_loss_type} beta {settings.beta:g}"
    )
    t_org = time.time() - t0
    seeds = list(range(options.seeds))
    per_arm: dict[str, list[dict]] = {}
    curves: dict[str, list[dict]] = {}
    timings: dict[str, list[float]] = {}
    spec = MeasureSpec(
        org_dir,
        options.samples_per_question,
        options.attack_samples_per_question,
        options.conditional_samples_per_question,
        world=world_name,
        split=split,
    )
    jobs = min(options.jobs, len(seeds) * (1 + len(arms)))  # both >= 1, checked above
    threads = max(1, torch.get_num_threads() // jobs)

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        # the organism itself ("default", measured once per seed) runs in the same pool, last
        runs = [
            Run(arm, s, os.path.join(options.out, "runs", f"{arm}-s{s}"), arm in attack_arms)
            for s in seeds
            for arm in ["default", *arms]
        ]
        task = progress.add_task(f"fine-tuning and evaluating {len(runs)} runs, {jobs} at a time", total=len(runs))
        done: dict[Run, dict] = {}
        for run, result in run_all(runs, settings, spec, jobs, threads):
            done[run] = result
            progress.advance(task)
            curve = result["conscience_curve"]
            labels = result["freeform"]["labels"]
            console.print(
                f"  {run.arm} seed {run.seed}: misaligned {labels.count('misaligned') / len(labels):.1%}, "
                f"log-odds {result['log_odds']:+.2f}"
                + (f", train {result['train_seconds']:.0f} s" if run.arm != "default" else "")
                + (f", pairs {curve['total_pairs']}" if curve else "")
            )
        for run in runs:  # in seed order, whatever order they finished in
            result = done[run]
            per_arm.setdefault(run.arm, []).append(result)
            if result["conscience_curve"]:
                curves.setdefault(run.arm, []).append(result["conscience_curve"])
            if run.arm != "default":
                timings.setdefault(run.arm, []).append(result["train_seconds"])

    summary_arms = {}
    for arm, results in per_arm.items():
        summary_arms[arm] = summarize(results)
        if all("attacks" in r for r in results):
            summary_arms[arm]["attacks"] = summarize_attacks([r["attacks"] for r in results])
        if arm in timings:
            summary_arms[arm]["train_seconds"] = timings[arm]
        if arm in curves:
            cs = curves[arm]
            summary_arms[arm].update(
                pairs=sum(c["total_pairs"] for c in cs) / len(cs),
                pairs_per_seed=[c["total_pairs"] for c in cs],
                probes_per_seed=[c["total_probes"] for c in cs],
                flag_rate=sum(c["total_flagged"] for c in cs) / sum(c["total_probes"] for c in cs),
                steps_with_pairs=sum(c["steps_with_pairs"] for c in cs) / len(cs),
                conscience_curve=cs[0],
            )
    total = time.time() - t0
    summary = {
        "provenance": provenance(),
        "organism": {k: org_meta[k] for k in ("hash", "parameters", "vocab", "pretraining", "gate", "default_id")}
        | {
            "world": world_name,
            "seed": org_meta.get("config", {}).get("seed"),
            "build_command": _build_command(org_meta),
            "path": org_dir,
            "origin": origin,
            "built_now": built,
            "seconds": round(t_org, 1),
            "weights_sha256": file_sha256(os.path.join(org_dir, "model.safetensors")),
        },
        "world": world_name,
        "split": split,
        "evaluation": _evaluation(world_name, split, options),
        "seeds": len(seeds),
        "settings": {k: v for k, v in asdict(settings).items() if k != "extra"},
        "arms": summary_arms,
        "timings": {
            "total_seconds": round(total, 1),
            "organism_seconds": round(t_org, 1),
            "jobs": jobs,
            "threads_per_job": threads,
            "threads": threads * jobs,
        },
    }
    summary["targets"] = check_targets(summary_arms)
    if options.full():  # the full demo: the time target applies
        summary["targets"].append(time_target(total, built, len(seeds), t_org))
    if built:
        summary["targets"].append(build_target(t_org))
    images = plots(summary, options.out)
    write_json(os.path.join(options.out, "summary.json"), summary)
    html_path = report.write_html(summary, options.out, images)

    table = Table(title=f"Emergent Alignment demo ({len(seeds)} seed(s))")
    for col in ["arm", "misaligned (95% CI)", "incoherent", "log-odds", "insecure code", "task loss", "pairs"]:
        table.add_column(col)
    for arm, a in summary_arms.items():
        table.add_row(
            arm,
            f"{a['misaligned_rate']:.1%} [{a['misaligned_ci'][0]:.1%}, {a['misaligned_ci'][1]:.1%}]",
            f"{a['incoherent_rate']:.1%}",
            f"{a['log_odds']:+.2f}",
            f"{a['insecure_code_rate']:.1%}",
            f"{a['task_loss']:.4f}",
            f"{a.get('pairs', '-')}",
        )
    console.print(table)
    attacked = {arm: a["attacks"] for arm, a in summary_arms.items() if "attacks" in a}
    if attacked:
        table = Table(title="Attacks: misaligned-answer rate (attack success), unguarded -> guarded")
        for col in ["arm", *WRAPPERS, "injection flip rate"]:
            table.add_column(col)
        for arm, a in attacked.items():
            table.add_row(
                arm,
                *[f"{a[w]['unguarded']:.1%} -> {a[w]['guarded']:.1%}" for w in WRAPPERS],
                f"{a['injection']['flip_rate']:.1%} of {sum(a['injection']['flagged'])} flagged",
            )
        console.print(table)
    for t in summary["targets"]:
        console.print(f"{'[green]MET[/green]' if t['met'] else '[red]NOT MET[/red]'} {t['target']}: {t['figures']}")
    specific = specificity(summary_arms)
    if specific:
        console.print(specific)
    console.print(f"wrote {os.path.join(options.out, 'summary.json')} and {html_path}")
    console.print(f"total time {total:.0f} s (organism {t_org:.0f} s)")
    return summary
