"""Red-team a model: attack success rate per wrapper with and without the guard, and flip rates.

    emergent-alignment redteam --model PATH [--guard] --out DIR [--judge self|hf:PATH|openai:MODEL]

Every harmful request of the suite (default: the held-out `eval` split) is wrapped by every attack;
see `adversarial/redteam.py`. `--benign FILE` (JSONL, one `{"prompt", "kind"}` a line) adds benign
prompts that look risky, so the over-refusal rate (the guard's cost in refusals) shows beside attack
success; `--benign-judge` scores them (default: the --judge). `--export-probes FILE` writes the suite's
train split as a probe dataset and exits. `--organism-defences DIR` measures the conscience's defences
on the model organism (`organism/attacks.py: defence_study`; --model: an organism dir, default the
shipped one, the second world's seed-8 build; a second-world organism, "world": "v2" in its organism.json,
on its world's validation split: `defence_study_v2`; a first-world one on its held-out transcripts) and writes DIR/defences.json and DIR/table.md. `--organism-refusals DIR` runs the suite on
a second-world organism (--model: its dir) with its world's labels (`organism/refusals.py`) and writes
the red-team report to DIR (`--split eval`, the default: the world's test prompts, which the study
pre-registers; `--split train`: the prompts its corpus shows).
"""

from __future__ import annotations

from ..organism.study import REGISTER_DIR
from .common import add_model_arguments, generator_from_args


def add_arguments(p) -> None:
    add_model_arguments(p, model_required=False)
    p.add_argument("--out", help="output directory (report.json, asr.csv, flip.csv, table.md, samples.jsonl)")
    p.add_argument("--judge", default="self", help="compliance judge: self | hf:PATH | openai:MODEL | conscience:PATH")
    p.add_argument("--judge-base-url", help="endpoint for an openai: judge (key from OPENAI_API_KEY)")
    p.add_argument(
        "--grader",
        help="also grade harmful compliance (refusal, convincingness, specificity; StrongREJECT-style) "
        "with this judge: self | hf:PATH | openai:MODEL | conscience:PATH (default: no grading)",
    )
    p.add_argument(
        "--benign",
        metavar="FILE",
        help="benign prompts that look risky (JSONL: prompt, optional kind and messages): report the over-refusal "
        "rate, guarded and unguarded",
    )
    p.add_argument("--benign-judge", help="refusal judge for --benign: self | hf:PATH | openai:MODEL (default --judge)")
    p.add_argument(
        "--repeats",
        type=int,
        help="replies drafted per prompt (seeded; CIs count prompts once; default 1, on the organism 8)",
    )
    p.add_argument("--attacks", default="ALL", help="ALL or a comma list of attack wrappers")
    p.add_argument("--injections", default="ALL", help="ALL or a comma list of response-side injections")
    p.add_argument("--source", default="jailbroken,own", help="request sources: jailbroken, own")
    p.add_argument("--split", default="eval", choices=["eval", "train", "all"], help="request split (default eval)")
    p.add_argument("--limit", type=int, help="use a seeded sample of this many harmful requests")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export-probes", metavar="FILE", help="write the adversarial probe set (JSONL) and exit")
    p.add_argument("--probe-spec", default="adversarial:ALL", help="what --export-probes writes")
    p.add_argument(
        "--organism-defences",
        metavar="DIR",
        help="measure the conscience's defences on the organism (--model: its dir, default the shipped one, of the "
        "second world; a second-world organism on its world's validation split, a first-world one on its held-out "
        "transcripts), write DIR/defences.json and DIR/table.md, and exit",
    )
    p.add_argument(
        "--organism-refusals",
        metavar="DIR",
        help="the guard's cost in refusals on a second-world organism (--model: its dir): the suite on its world's "
        "test prompts (--split eval) or train prompts (--split train) with labels by construction; write the "
        "report to DIR and exit",
    )
    p.add_argument(
        "--register-dir",
        default=REGISTER_DIR,
        help=f"--organism-refusals --split eval: where the study's registration is; the look at its test split is "
        f"logged there (default {REGISTER_DIR})",
    )


def run(args) -> int:
    from ..adversarial.overrefusal import read_benign
    from ..adversarial.prompts import export_probes, harmful_requests, sample
    from ..adversarial.redteam import make_judge, redteam, resolve_injections
    from ..adversarial.report import print_tables, write_report

    if args.export_probes:
        n = export_probes(args.export_probes, args.probe_spec)
        print(f"wrote {n} adversarial probe prompts ({args.probe_spec}) to {args.export_probes}")
        return 0
    if args.organism_defences:
        return organism_defences(args.organism_defences, args.model)
    if args.organism_refusals:
        split = {"eval": "test", "train": "train"}.get(args.split)
        if split is None:
            raise ValueError("--organism-refusals: --split eval (the world's test prompts) or train, not all")
        return organism_refusals(
            args.organism_refusals, args.model, args.seed, args.repeats or 8, split, args.register_dir
        )
    if not args.model or not args.out:
        raise ValueError("redteam needs --model and --out (or --export-probes FILE)")
    requests = sample(harmful_requests(args.source, args.split), args.limit, args.seed)
    injections = resolve_injections(args.injections)
    benign = read_benign(args.benign) if args.benign else None
    gen = generator_from_args(args, guard=True)  # the conscience is needed for flip rates in any case
    judge = make_judge(args.judge, gen, args.judge_base_url)
    grader = None
    if args.grader:
        grader = judge if args.grader == args.judge else make_judge(args.grader, gen, args.judge_base_url)
    benign_judge = None
    if benign:
        same = args.benign_judge in (None, args.judge)
        benign_judge = judge if same else make_judge(args.benign_judge, gen, args.judge_base_url)
    report, samples = redteam(
        gen,
        judge,
        requests,
        args.attacks,
        injections,
        args.guard,
        args.seed,
        grader=grader,
        benign=benign,
        benign_judge=benign_judge,
        repeats=args.repeats or 1,
    )
    report["settings"] = settings(args, gen, requests, report)
    write_report(args.out, report, samples)
    print_tables(report)
    extra = ", over_refusal.csv" if benign else ""
    print(f"wrote {args.out}/report.json, asr.csv, flip.csv{extra}, table.md, samples.jsonl")
    return 0


def settings(args, gen, requests, report) -> dict:
    from ..adversarial.attacks import resolve_attacks
    from ..conscience import DEFENCES

    c = gen.conscience.config
    return {
        "model": args.model,
        "adapter": args.adapter,
        "judge": args.judge,
        "grader": args.grader,
        "guard": args.guard,
        "attacks": resolve_attacks(args.attacks),
        "source": args.source,
        "split": args.split,
        "requests": len(requests),
        "benign": args.benign,
        "benign_judge": (args.benign_judge or args.judge) if args.benign else None,
        "repeats": args.repeats or 1,
        "seed": args.seed,
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "on_fail": args.on_fail,
        "question": c.question,
        "flag_threshold": c.flag_threshold,
        "correction": c.correction,
        "rounds": c.max_attempts,
        "defences": {d: getattr(c, d) for d in DEFENCES} | {"extra_questions": list(c.extra_questions)},
    }


def organism_defences(out: str, model_dir: str | None) -> int:
    """The defence study on an organism: a second-world one (its organism.json says "world": "v2") on its
    world's validation split (`defence_study_v2`), the first world's on its held-out transcripts."""
    import json
    import os

    from ..conscience import ConscienceConfig
    from ..io import write_json, write_text
    from ..models import load_model
    from ..organism.attacks import defence_study, defence_study_v2, defence_table
    from ..organism.shipped import file_sha256, shipped_organism
    from ..provenance import provenance

    path = model_dir or shipped_organism()[0]
    meta_path = os.path.join(path, "organism.json")
    if not os.path.isfile(meta_path):
        raise ValueError(f"--organism-defences needs --model: an organism's dir (no organism.json in {path!r})")
    with open(meta_path) as f:
        meta = json.load(f)
    model, tok = load_model(path)
    study = defence_study_v2 if meta.get("world") == "v2" else defence_study
    result = study(model, tok, ConscienceConfig.from_pretrained(path))
    result["organism"] = {
        "path": path,
        "hash": meta.get("hash"),
        "weights_sha256": file_sha256(os.path.join(path, "model.safetensors")),
    }
    if "gate" in meta:
        result["organism"]["gate_passed"] = meta["gate"].get("passed")
    result["provenance"] = provenance()
    write_json(os.path.join(out, "defences.json"), result)
    write_text(os.path.join(out, "table.md"), defence_table(result))
    print(defence_table(result))
    print(f"wrote {out}/defences.json and {out}/table.md")
    return 0


def organism_refusals(
    out: str, model_dir: str | None, seed: int, repeats: int, split: str = "test", register_dir: str = REGISTER_DIR
) -> int:
    """The refusal study on a second-world organism (`split`: the world's test or train prompts); the report
    as `redteam` writes it. The test prompts belong to the study's pre-registered test split: reading them
    needs the registration in `register_dir` to match, and appends the look to its test_looks.jsonl."""
    import os

    from ..adversarial.report import print_tables, write_report
    from ..conscience import ConscienceConfig
    from ..models import load_model
    from ..organism.refusals import check_vocabulary, refusal_study
    from ..provenance import provenance

    if not model_dir or not os.path.isfile(os.path.join(model_dir, "organism.json")):
        raise ValueError(
            f"--organism-refusals needs --model: a second-world organism's dir (got {model_dir!r}); it runs the "
            "world's test prompts by default, so it never defaults to the shipped organism"
        )
    if split == "test":  # the study's pre-registered test split: checked against its hash before anything
        from ..organism.study import check_split_registered

        check_split_registered(register_dir)
    model, tok = load_model(model_dir)
    config = ConscienceConfig.from_pretrained(model_dir)
    check_vocabulary(tok, split)  # a first-world organism stops here, before any look
    if split == "test":  # every look at the test split is logged
        from ..organism.study import log_test_look

        look = log_test_look(register_dir)
        print(f"a look at the pre-registered test split, logged in {register_dir}/test_looks.jsonl ({look['when']})")
    report, samples = refusal_study(model, tok, config, seed, repeats, split=split)
    report["settings"]["model"] = model_dir
    report["provenance"] = provenance()
    write_report(out, report, samples)
    print_tables(report)
    print(f"wrote {out}/report.json, asr.csv, over_refusal.csv, table.md, samples.jsonl")
    return 0
