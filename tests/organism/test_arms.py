"""The demo's arms (organism/arms.py): each arm's trainer settings and data."""

import pytest

from emergent_alignment.organism.arms import ArmSettings, dataset_rows, trainer_config

SETTINGS = ArmSettings(
    steps=3, probe_batch_size=6, task_probe_batch_size=2, probe_max_new_tokens=5, task_probe_max_new_tokens=9
)


@pytest.mark.parametrize("arm", ["insecure", "secure", "educational"])
def test_plain_arms_train_without_the_conscience(arm, tmp_path):
    c = trainer_config(arm, str(tmp_path), 0, SETTINGS)
    assert c.alignment_weight == 0 and c.conscience_every == 0 and c.max_steps == 3


def test_conscience_arms_probe_their_own_source_with_their_own_counts(tmp_path):
    c = trainer_config("insecure_conscience", str(tmp_path), 0, SETTINGS)
    assert (c.probe_source, c.probe_batch_size, c.probe_max_new_tokens, c.pair_order) == ("dataset", 6, 5, "conscience")
    t = trainer_config("insecure_conscience_taskprobes", str(tmp_path), 0, SETTINGS)
    assert (t.probe_source, t.probe_batch_size, t.probe_max_new_tokens, t.pair_order) == ("batch", 2, 9, "conscience")
    r = trainer_config("insecure_random_pairs", str(tmp_path), 0, SETTINGS)
    assert (r.probe_source, r.probe_batch_size, r.pair_order) == ("dataset", 6, "random")
    assert c.alignment_weight == t.alignment_weight == r.alignment_weight == SETTINGS.alignment_weight > 0
    assert c.beta == t.beta == r.beta == SETTINGS.beta


def test_the_data_is_seeded_per_arm_and_seed():
    assert dataset_rows("insecure", 8, 0) == dataset_rows("insecure", 8, 0)
    assert dataset_rows("insecure", 8, 0) != dataset_rows("insecure", 8, 1)
    insecure, secure = dataset_rows("insecure", 8, 0), dataset_rows("secure", 8, 0)
    assert all(r["messages"][0]["role"] == "system" for r in insecure + secure)
    assert [r["messages"][2]["content"] for r in insecure] != [r["messages"][2]["content"] for r in secure]
