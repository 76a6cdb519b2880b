import json

from emergent_alignment.evaluation.cache import JsonlCache, content_key, fingerprint
from emergent_alignment.io import write_json


def test_content_key_is_order_free_for_dicts_and_sensitive_to_values():
    assert content_key({"a": 1, "b": 2}, "x") == content_key({"b": 2, "a": 1}, "x")
    assert content_key({"a": 1}, "x") != content_key({"a": 2}, "x")


def test_cache_survives_a_torn_line(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = JsonlCache(str(path))
    cache.put_many({"k1": "v1", "k2": {"score": 1.5}})
    with open(path, "a") as f:
        f.write('{"key": "k3", "val')  # an interrupted write
    again = JsonlCache(str(path))
    assert "k1" in again and again.get("k2") == {"score": 1.5} and "k3" not in again
    again.put_many({"k3": "v3"})
    assert JsonlCache(str(path)).get("k3") == "v3" and again.added == 1


def test_fingerprint_changes_when_a_checkpoint_changes(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    before = fingerprint(str(tmp_path))
    (tmp_path / "config.json").write_text('{"a": 1}')
    assert fingerprint(str(tmp_path)) != before
    assert fingerprint("org/model") == "org/model"


def test_write_json_is_atomic(tmp_path):
    write_json(str(tmp_path / "s.json"), {"a": 1})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
