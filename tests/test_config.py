import pytest
import torch
from transformers import TrainingArguments

from emergent_alignment.config import EmergentAlignmentConfig


def test_bf16_default_follows_the_hardware(tmp_path):
    cfg = EmergentAlignmentConfig(output_dir=str(tmp_path))
    # on only where a GPU supports it: SFTConfig's bf16=True would fail without one
    assert cfg.bf16 is bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert cfg.alignment_weight == 1.0 and cfg.alignment_loss_type == "sigmoid"


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("beta", -0.1, "beta"),
        ("alignment_weight", -1.0, "alignment_weight"),
        ("alignment_loss_type", "hinge", "alignment_loss_type"),
        ("probe_source", "web", "probe_source"),
        ("probe_batch_size", 0, "probe_batch_size"),
        ("conscience_every", -1, "conscience_every"),
        ("pair_order", "reverse", "pair_order"),
        ("conscience_flag_threshold", 2.0, "flag_threshold"),
        ("conscience_correction", "pray", "correction"),
    ],
)
def test_out_of_range_values_name_the_field(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        EmergentAlignmentConfig(output_dir=str(tmp_path), **{field: value})


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "anchor", "kl", "sft"])
def test_every_loss_type_is_accepted(tmp_path, loss_type):
    assert (
        EmergentAlignmentConfig(output_dir=str(tmp_path), alignment_loss_type=loss_type).alignment_loss_type
        == loss_type
    )


def test_an_unknown_loss_type_lists_the_choices(tmp_path):
    with pytest.raises(ValueError, match="alignment_loss_type must be one of sigmoid, ipo, anchor, kl, sft"):
        EmergentAlignmentConfig(output_dir=str(tmp_path), alignment_loss_type="hinge")


def test_batch_probes_cannot_be_packed(tmp_path):
    with pytest.raises(ValueError, match="packing"):
        EmergentAlignmentConfig(output_dir=str(tmp_path), probe_source="batch", packing=True)


def test_conscience_overrides_apply(tmp_path):
    from emergent_alignment.conscience import ConscienceConfig

    cfg = EmergentAlignmentConfig(
        output_dir=str(tmp_path), conscience_question="Was that honest?", conscience_max_attempts=4
    )
    cc = cfg.conscience_config(ConscienceConfig(flag_threshold=0.3))
    assert (cc.question, cc.max_attempts, cc.flag_threshold) == ("Was that honest?", 4, 0.3)


def test_checkpointing_defaults_to_non_reentrant(tmp_path):
    cfg = EmergentAlignmentConfig(output_dir=str(tmp_path), gradient_checkpointing=True)
    assert cfg.gradient_checkpointing_kwargs == {"use_reentrant": False}
    kept = EmergentAlignmentConfig(
        output_dir=str(tmp_path), gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True}
    )
    assert kept.gradient_checkpointing_kwargs == {"use_reentrant": True}  # one process: it works


def test_reentrant_checkpointing_with_several_processes_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: 2))
    with pytest.raises(ValueError, match="gradient_checkpointing_kwargs: use_reentrant=True"):
        EmergentAlignmentConfig(
            output_dir=str(tmp_path), gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True}
        )
    EmergentAlignmentConfig(  # plain SFT through the trainer: no second forward
        output_dir=str(tmp_path),
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": True},
        alignment_weight=0.0,
    )


def test_neftune_only_without_the_alignment_term(tmp_path):
    with pytest.raises(ValueError, match="neftune_noise_alpha"):
        EmergentAlignmentConfig(output_dir=str(tmp_path), neftune_noise_alpha=5.0)
    EmergentAlignmentConfig(output_dir=str(tmp_path), neftune_noise_alpha=5.0, alignment_weight=0.0)


def test_chat_template_path_only_as_a_template_file(tmp_path):
    with pytest.raises(ValueError, match="chat_template_path"):
        EmergentAlignmentConfig(output_dir=str(tmp_path), chat_template_path="Qwen/Qwen3-0.6B")
    EmergentAlignmentConfig(output_dir=str(tmp_path), chat_template_path=str(tmp_path / "template.jinja"))


def test_a_bad_vllm_setting_is_refused_by_name():
    with pytest.raises(ValueError, match="vllm_mode must be colocate or server"):
        EmergentAlignmentConfig(output_dir="x", use_vllm=True, vllm_mode="remote", report_to=[])
    with pytest.raises(ValueError, match="vllm_gpu_memory_utilization"):
        EmergentAlignmentConfig(output_dir="x", use_vllm=True, vllm_gpu_memory_utilization=0, report_to=[])
