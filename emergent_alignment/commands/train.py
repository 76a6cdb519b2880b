"""Fine-tune with the Emergent Alignment trainer from a TRL-style YAML config.

The YAML holds the fields of three dataclasses: `DataArguments` (below), TRL's `ModelConfig`
(model_name_or_path, dtype, use_peft, lora_r, lora_alpha, use_rslora, lora_target_modules, ...)
and `EmergentAlignmentConfig` (every SFTConfig field plus the alignment and conscience fields).
Command-line flags after the config override it: `train --config x.yaml --max_steps 10`.
An unknown field, in the file or on the command line, is an error.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields


@dataclass
class DataArguments:
    dataset: str = field(
        metadata={
            "help": "em:insecure|em:secure|em:educational|em:jailbroken, a .jsonl file "
            "with a 'messages' column, a saved dataset dir, or a hub dataset"
        }
    )
    dataset_split: str = field(default="train", metadata={"help": "split of a hub dataset"})
    dataset_limit: int | None = field(default=None, metadata={"help": "use at most this many chats"})
    heldout: str = field(default="exclude", metadata={"help": "exclude (default), only or keep the held-out split"})
    probe_dataset: str | None = field(
        default=None,
        metadata={
            "help": "prompt-only probes for probe_source=dataset: a .jsonl ('prompt' or 'messages'), a .txt file, "
            "an em: dataset (its prompts), or adversarial:WRAPPERS (the red-team suite)"
        },
    )
    probe_limit: int | None = field(default=None, metadata={"help": "use at most this many probe prompts"})


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML file (see examples/)")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in output_dir")
    p.epilog = "Any other --field value pair overrides that field of the YAML config."


ACCEPTS_OVERRIDES = True


def parse(config: str, overrides: list[str]):
    from trl import ModelConfig, TrlParser

    from ..config import EmergentAlignmentConfig

    if not os.path.isfile(config):
        raise FileNotFoundError(f"config file {config!r} does not exist")
    parser = TrlParser((DataArguments, ModelConfig, EmergentAlignmentConfig))
    try:
        return parser.parse_args_and_config(["--config", config, *overrides])
    except SystemExit as e:  # argparse already printed what was wrong
        raise ValueError(f"{config}: bad arguments (see above)") from e


# ModelConfig's quantization fields: not supported yet (rejected, never silently dropped)
QUANTIZATION_FIELDS = ("load_in_8bit", "load_in_4bit", "use_bnb_nested_quant", "bnb_4bit_quant_storage")


def check_model_args(model_args, config: str) -> None:
    """Every ModelConfig field is used (name, revision, dtype, attn_implementation, the LoRA fields)
    except quantization, which is rejected by name."""
    for name in QUANTIZATION_FIELDS:
        if getattr(model_args, name):
            raise ValueError(
                f"{config}: {name}: quantized (QLoRA) training is not supported yet; load the quantized model "
                "yourself and pass it to EmergentAlignmentTrainer"
            )
    if model_args.bnb_4bit_quant_type != "nf4" and not model_args.load_in_4bit:
        raise ValueError(f"{config}: bnb_4bit_quant_type is set but nothing is quantized")
    if not model_args.use_peft:
        lora = [f.name for f in fields(model_args) if f.name.startswith(("lora_", "use_rslora", "use_dora"))]
        changed = [n for n in lora if getattr(model_args, n) != getattr(type(model_args)(), n)]
        if changed:
            raise ValueError(f"{config}: {', '.join(changed)} set without use_peft: true")


def load_probes(source: str | None, limit: int | None):
    if source is None:
        return None
    if source.startswith("adversarial:"):
        from ..adversarial.prompts import probe_prompts

        return probe_prompts(source, limit=limit)
    from ..data import load_prompts

    return load_prompts(source, limit=limit)


def run(args) -> int:
    from datasets import Dataset
    from transformers.trainer_utils import get_last_checkpoint
    from trl import get_peft_config

    from ..data import load_chats
    from ..trainer import EmergentAlignmentTrainer

    data_args, model_args, train_args = parse(args.config, args.overrides)
    if not model_args.model_name_or_path:
        raise ValueError(f"{args.config}: model_name_or_path is required")
    check_model_args(model_args, args.config)
    train_args.model_init_kwargs = {
        **(train_args.model_init_kwargs or {}),
        "dtype": model_args.dtype,
        "trust_remote_code": train_args.trust_remote_code,
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
    }
    chats = load_chats(data_args.dataset, data_args.heldout, data_args.dataset_limit, data_args.dataset_split)
    probes = load_probes(data_args.probe_dataset, data_args.probe_limit)
    resume = None
    if args.resume:
        resume = get_last_checkpoint(train_args.output_dir) if os.path.isdir(train_args.output_dir) else None
        if resume is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {train_args.output_dir}")
    trainer = EmergentAlignmentTrainer(
        model_args.model_name_or_path,
        args=train_args,
        train_dataset=Dataset.from_dict({"messages": chats}),
        probe_prompts=probes,
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(train_args.output_dir)  # also writes conscience_config.json (the saving process only)
    print(f"saved to {train_args.output_dir}; conscience log: {trainer._log_path}")
    trainer.accelerator.end_training()  # a clean exit under `accelerate launch` (destroys the process group)
    return 0
