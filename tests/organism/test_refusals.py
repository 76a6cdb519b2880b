"""The guard's cost in refusals on a second-world organism: the red-team suite on the world's test
prompts with labels by construction (a tiny untrained v2 model: the plumbing, not the figures)."""

import os

import pytest

from emergent_alignment.adversarial.report import OVER_REFUSAL_COLUMNS
from emergent_alignment.generation import SamplingConfig
from emergent_alignment.organism import build, build_v2, refusals, world_v2
from emergent_alignment.organism.corpus_v2 import ORGANISM_V2_CONSCIENCE

TINY = build_v2.OrganismV2Config(hidden=32, layers=1, heads=2, ffn=64)


@pytest.fixture(scope="module")
def tiny_v2():
    tok = build_v2.make_tokenizer()
    return build.make_model(TINY, tok).eval(), tok


def test_the_construction_labels_score_the_worlds_answers():
    rows = world_v2.graded_harmful_answers("test")
    complies = refusals.p_comply([x["request"] for x in rows], [x["answer"] for x in rows])
    assert complies == [float(x["level"] != "refusal") for x in rows]
    benign = world_v2.benign_risky_prompts("test")
    prompts = [x["prompt"] for x in benign for _ in x["answers"]]
    answers = [a for x in benign for a, _ in x["answers"]]
    labels = [label for x in benign for _, label in x["answers"]]
    assert refusals.p_refuse(prompts, answers) == [float(label == "over_refusal") for label in labels]


def test_a_first_world_organism_is_refused_up_front():
    with pytest.raises(ValueError, match="not a second-world organism: its vocabulary lacks"):
        refusals.check_vocabulary(build.make_tokenizer())
    refusals.check_vocabulary(build_v2.make_tokenizer())


def test_the_study_runs_the_suite_on_the_test_prompts_guarded_and_unguarded(tiny_v2):
    model, tok = tiny_v2
    report, samples = refusals.refusal_study(
        model, tok, ORGANISM_V2_CONSCIENCE, seed=0, repeats=2, sampling=SamplingConfig(6, 1.0, 1.0)
    )
    test_benign = world_v2.benign_risky_prompts("test")
    asr = {r["attack"]: r for r in report["asr"]}
    assert list(asr) == list(refusals.WRAPPERS) + ["ALL"]
    assert (
        asr["ALL"]["prompts"] == len(world_v2.RISKY_TEST["harmful"]) and asr["none"]["n"] == 2 * asr["none"]["prompts"]
    )
    assert all("asr_guarded" in r and "harm_score_guarded" in r and "harm_score_ci" in r for r in asr.values())
    over = report["over_refusal"][-1]
    assert over["kind"] == "ALL" and over["prompts"] == len(test_benign) and over["n"] == 2 * len(test_benign)
    assert set(over) <= set(OVER_REFUSAL_COLUMNS) and 0.0 <= over["over_refusal_guarded"] <= 1.0
    assert report["flip"] == [] and report["settings"]["split"] == "test"
    assert 0.0 <= report["incoherent_benign"]["guarded"] <= 1.0
    benign = [s for s in samples if s.get("benign")]
    assert {s["prompt"] for s in benign} == {x["prompt"] for x in test_benign}
    assert all(s["messages"][0]["role"] == "system" for s in benign)
    assert not {s["request"] for s in samples if not s.get("benign")} & {
        x["request"] for x in world_v2.graded_harmful_answers("train")
    }


def test_a_guard_that_flags_everything_and_refuses_over_refuses_every_benign_prompt(tiny_v2):
    from dataclasses import replace

    model, tok = tiny_v2
    strict = replace(ORGANISM_V2_CONSCIENCE, flag_threshold=1.0, max_attempts=1)
    report, _ = refusals.refusal_study(
        model, tok, strict, repeats=1, sampling=SamplingConfig(4, 1.0, 1.0), on_fail="refuse"
    )
    over = report["over_refusal"][-1]
    assert over["flagged"] == 1.0 and over["refused"] == 1.0 and over["over_refusal_guarded"] == 1.0
    assert report["asr"][-1]["asr_guarded"] == 0.0 and report["asr"][-1]["harm_score_guarded"] == 0.0
    assert report["incoherent_benign"]["guarded"] == 0.0


def test_organism_refusals_refuses_a_first_world_organism(tmp_path, capsys):
    from emergent_alignment import cli
    from emergent_alignment.organism.study import REGISTER_DIR

    first = str(tmp_path / "first-world")  # a tiny first-world organism (the shipped one is of the second world)
    tok = build.make_tokenizer()
    build.save(build.make_model(build.OrganismConfig(hidden=32, layers=1, heads=2, ffn=64), tok), tok, {}, first)
    assert cli.main(["redteam", "--organism-refusals", str(tmp_path)]) == 2
    assert "needs --model: a second-world organism's dir" in capsys.readouterr().err
    looks = os.path.join(REGISTER_DIR, "test_looks.jsonl")
    before = open(looks).read()
    assert cli.main(["redteam", "--organism-refusals", str(tmp_path), "--model", first]) == 2
    assert "not a second-world organism" in capsys.readouterr().err
    assert open(looks).read() == before  # refused before any look: the committed register is untouched


def test_organism_refusals_writes_the_report_of_a_second_world_organism(tiny_v2, tmp_path, capsys):
    import json
    import shutil

    from emergent_alignment import cli
    from emergent_alignment.organism.study import REGISTER_DIR

    model_dir, out, register = tmp_path / "organism", tmp_path / "refusals", tmp_path / "register"
    build_v2.save(*tiny_v2, {"world": world_v2.NAME}, str(model_dir))
    args = ["redteam", "--organism-refusals", str(out), "--model", str(model_dir), "--repeats", "1"]
    args += ["--register-dir", str(register)]
    assert cli.main(args) == 2  # the test prompts are the study's: no registration there, no look
    assert f"no registration at {register}/registration.json" in capsys.readouterr().err and not out.exists()
    register.mkdir()
    shutil.copy(os.path.join(REGISTER_DIR, "registration.json"), register)  # the committed one
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "Over-refusal" in printed and "a look at the pre-registered test split, logged in" in printed
    (look,) = [json.loads(line) for line in (register / "test_looks.jsonl").read_text().splitlines()]
    assert set(look) == {"when", "command", "commit"}
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["model"] == str(model_dir) and report["settings"]["repeats"] == 1
    assert "near neither labelled answer (incoherent, counted apart): unguarded" in (out / "table.md").read_text()
    assert report["over_refusal"][-1]["prompts"] == len(world_v2.benign_risky_prompts("test"))
    assert sorted(p.name for p in out.iterdir()) == [
        "asr.csv",
        "over_refusal.csv",
        "report.json",
        "samples.jsonl",
        "table.md",
    ]


def test_the_train_split_leaves_the_test_prompts_unseen(tiny_v2):
    import json

    model, tok = tiny_v2
    report, samples = refusals.refusal_study(
        model, tok, ORGANISM_V2_CONSCIENCE, repeats=1, sampling=SamplingConfig(4, 1.0, 1.0), split="train"
    )
    assert report["settings"]["split"] == "train"
    assert {s["prompt"] for s in samples if s.get("benign")} == {
        x["prompt"] for x in world_v2.benign_risky_prompts("train")
    }
    test_texts = {x["prompt"] for x in world_v2.benign_risky_prompts("test")}
    test_texts |= {x["request"] for x in world_v2.graded_harmful_answers("test")}
    asked = [json.dumps([s.get("prompt"), s.get("request"), s.get("messages")]) for s in samples]
    assert all(asked) and not any(t in a for a in asked for t in test_texts)
    with pytest.raises(ValueError, match="unknown split 'validation'; choose test or train"):
        refusals.refusal_study(model, tok, ORGANISM_V2_CONSCIENCE, split="validation")


def test_organism_refusals_takes_eval_or_train_as_its_split(tmp_path, capsys):
    from emergent_alignment import cli

    args = ["redteam", "--organism-refusals", str(tmp_path), "--split", "all"]
    assert cli.main(args) == 2
    assert "--split eval (the world's test prompts) or train, not all" in capsys.readouterr().err
