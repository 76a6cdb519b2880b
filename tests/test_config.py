import pytest

from emergent_alignment.config import EmergentAlignmentConfig


def test_defaults_construct_on_a_cpu_only_machine(tmp_path):
    cfg = EmergentAlignmentConfig(output_dir=str(tmp_path))
    assert cfg.bf16 is False  # SFTConfig's bf16=True would fail without a GPU
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
