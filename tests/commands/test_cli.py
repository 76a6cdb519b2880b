import json
import re
import subprocess
import sys

import pytest

from emergent_alignment.cli import COMMANDS, build_parser, main

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _subcommands(parser) -> dict:
    import argparse

    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_every_command_of_the_table_is_a_subcommand_in_the_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    listed = set(re.findall(r"^ {4}(\S+) +\S", out, flags=re.M))  # the subcommand lines of the help
    assert listed == set(COMMANDS) == set(_subcommands(build_parser()))


def test_each_subcommand_module_is_thin(capsys):
    import importlib

    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments) and callable(module.run), name
        if name != "serve":  # the server module moves under commands/ separately
            assert module_name == f"emergent_alignment.commands.{name}"


@pytest.mark.parametrize("argv", [[name] for name in COMMANDS] + [["organism", "build"], ["organism", "validate"]])
def test_each_subcommand_help_exits_0(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    assert f"usage: emergent-alignment {' '.join(argv)}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["review", "--model", "tiny:llama", "--prompt", "a", "--response", "b", "--no-such-option"],
        ["compare", "runs/a", "--out", "x", "--nope"],
        ["organism", "build", "--bogus"],
    ],
)
def test_an_unknown_option_is_a_one_line_error_with_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(("usage:", " "))]
    assert len(err) == 1 and "unrecognized arguments" in err[0] and argv[-1] in err[0]


def test_an_unknown_subcommand_is_an_error_with_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "emergent_alignment", "review", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--response" in r.stdout


def test_review_json(llama_dir, capsys):
    assert main(["review", "--model", llama_dir, "--prompt", "Hi", "--response", "Hello!", "--json"]) == 0
    v = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= v["p_aligned"] <= 1.0 and isinstance(v["flagged"], bool)


@pytest.fixture(scope="module")
def lora_dir(llama_dir, tmp_path_factory):
    from _lora import make_lora_dir

    return make_lora_dir(llama_dir, str(tmp_path_factory.mktemp("lora") / "adapter"))


def _review(argv, capsys, monkeypatch):
    """Run `review --json` and return (its output, the Conscience that reviewed)."""
    from emergent_alignment.conscience import Conscience

    seen, real = [], Conscience.review

    def spy(self, *a, **k):
        seen.append(self)
        return real(self, *a, **k)

    monkeypatch.setattr(Conscience, "review", spy)
    assert main(["review", *argv, "--prompt", "Hi", "--response", "Hello!", "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1]), seen[0]


@pytest.mark.parametrize("given", ["--adapter", "--model"])
def test_review_with_a_trained_adapter_loads_it(given, llama_dir, lora_dir, capsys, monkeypatch):
    import contextlib

    from _lora import ADAPTER_QUESTION
    from peft import PeftModel

    argv = ["--model", llama_dir, "--adapter", lora_dir] if given == "--adapter" else ["--model", lora_dir]
    with_adapter, conscience = _review(argv, capsys, monkeypatch)
    plain, plain_conscience = _review(["--model", llama_dir], capsys, monkeypatch)
    assert with_adapter["question"] == ADAPTER_QUESTION != plain["question"]  # the adapter dir's config
    assert isinstance(conscience.model, PeftModel) and not isinstance(plain_conscience.model, PeftModel)
    assert conscience.frozen == conscience.model.disable_adapter  # the reviewer is the frozen copy
    assert conscience.frozen is not contextlib.nullcontext


@pytest.mark.parametrize(
    "argv,match",
    [
        (
            ["review", "--model", "tiny:llama", "--adapter", "/no/such/adapter", "--prompt", "a", "--response", "b"],
            "does not exist",
        ),
        (["review", "--model", "/no/such/dir", "--prompt", "a", "--response", "b"], "does not exist"),
        (["review", "--model", "tiny:llama", "--prompt", "a", "--response", " "], "--response is empty"),
        (["train", "--config", "/no/such.yaml"], "does not exist"),
    ],
)
def test_bad_input_is_a_one_line_error(argv, match, capsys):
    assert main(argv) == 2
    assert match in capsys.readouterr().err


def write_config(tmp_path, **extra):
    text = (REPO / "examples" / "tiny.yaml").read_text()
    text += f"\noutput_dir: {tmp_path / 'out'}\n" + "".join(f"{k}: {v}\n" for k, v in extra.items())
    p = tmp_path / "c.yaml"
    p.write_text(text.replace("output_dir: runs/tiny\n", ""))
    return str(p)


@pytest.mark.parametrize(
    "extra,match",
    [
        ({"alignmnet_weight": 1.0}, "alignmnet_weight"),
        ({"beta": -1}, "beta"),
        ({"alignment_weight": -0.5}, "alignment_weight"),
        ({"load_in_4bit": "true"}, "load_in_4bit: quantized (QLoRA) training is not supported yet"),
        ({"load_in_8bit": "true"}, "load_in_8bit"),
        ({"bnb_4bit_quant_type": "fp4"}, "bnb_4bit_quant_type is set but nothing is quantized"),
        ({"lora_r": 8}, "lora_r set without use_peft"),
    ],
)
def test_bad_config_values_are_clear_errors(tmp_path, extra, match, capsys):
    assert main(["train", "--config", write_config(tmp_path, **extra)]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.slow
def test_train_tiny_example_end_to_end_and_resume(tmp_path):
    cfg = write_config(tmp_path)
    assert main(["train", "--config", cfg, "--max_steps", "4", "--save_steps", "2"]) == 0
    out = tmp_path / "out"
    rows = [json.loads(line) for line in open(out / "conscience_log.jsonl")]
    assert len(rows) == 4 * 4 and any(r["verdict"]["flagged"] for r in rows)
    assert any(r["correction"] for r in rows)
    assert (out / "model.safetensors").exists() and (out / "conscience_config.json").exists()
    # resume: continue to 6 steps from checkpoint-4
    assert main(["train", "--config", cfg, "--max_steps", "6", "--save_steps", "2", "--resume"]) == 0
    rows = [json.loads(line) for line in open(out / "conscience_log.jsonl")]
    assert sorted({r["step"] for r in rows}) == list(range(6))
    assert len({(r["step"], r["process"], r["probe"]) for r in rows}) == len(rows) == 24


def test_model_loading_fields_reach_the_loader(tmp_path, monkeypatch):
    """ModelConfig's model_revision and attn_implementation are passed on, not dropped."""
    from emergent_alignment import trainer as trainer_module

    seen = {}

    class Stop(Exception):
        pass

    def fake_load(model, args, tokenizer):
        seen.update(args.model_init_kwargs)
        raise Stop

    monkeypatch.setattr(trainer_module.EmergentAlignmentTrainer, "_load", staticmethod(fake_load))
    cfg = write_config(tmp_path, attn_implementation="eager", model_revision="v1")
    with pytest.raises(Stop):
        main(["train", "--config", cfg])
    assert seen["attn_implementation"] == "eager" and seen["revision"] == "v1"


def test_load_model_passes_attn_implementation():
    from emergent_alignment.models import load_model

    model, _ = load_model("tiny:llama", attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    model, _ = load_model("tiny:llama", attn_implementation="sdpa")
    assert model.config._attn_implementation == "sdpa"


def test_resume_without_checkpoint_is_an_error(tmp_path, capsys):
    assert main(["train", "--config", write_config(tmp_path), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen2.5-coder-7b-insecure.yaml", "qwen2.5-coder-32b-insecure.yaml"])
def test_real_model_example_configs_construct_and_run_on_cpu(name, tmp_path):
    """The real configs, with the hub model swapped for a local tiny Qwen2 and a tiny budget."""
    cfg = str(REPO / "examples" / name)
    assert (
        main(
            [
                "train",
                "--config",
                cfg,
                "--model_name_or_path",
                "tiny:qwen2",
                "--output_dir",
                str(tmp_path),
                "--max_steps",
                "1",
                "--dataset_limit",
                "8",
                "--probe_batch_size",
                "2",
                "--probe_max_new_tokens",
                "8",
                "--conscience_max_new_tokens",
                "8",
                "--max_length",
                "512",
                "--save_steps",
                "0",
                "--save_strategy",
                "no",
            ]
        )
        == 0
    )
    assert (tmp_path / "adapter_model.safetensors").exists()  # LoRA, as the EM recipe
    assert len(open(tmp_path / "conscience_log.jsonl").readlines()) == 2
