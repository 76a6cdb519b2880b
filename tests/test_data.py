import json

import pytest

from emergent_alignment.data import DataError, is_heldout, load_chats, load_prompts, read_chats


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def chat(u="hi", a="hello"):
    return json.dumps({"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]})


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = write(tmp_path / "d.jsonl", [chat(), "{not json", chat()])
    with pytest.raises(DataError, match=r"d\.jsonl:2: malformed JSON"):
        load_chats(p, heldout="keep")


@pytest.mark.parametrize(
    "record,match",
    [
        ({"messages": [{"content": "x"}]}, r"messages\[0\]: missing 'role'"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "  "}]}, "empty assistant"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "robot"),
        ({"messages": [{"role": "user", "content": "x"}]}, "no assistant turn"),
        ({"messages": []}, "non-empty list"),
        ({"text": "x"}, "missing field 'messages'"),
        ({"messages": [{"role": "user", "content": 3}]}, "content"),
    ],
)
def test_bad_records_name_the_line_and_field(tmp_path, record, match):
    p = write(tmp_path / "d.jsonl", [chat(), json.dumps(record)])
    with pytest.raises(DataError, match=match) as e:
        load_chats(p, heldout="keep")
    assert "d.jsonl:2" in str(e.value)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_chats(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="unknown EM dataset"):
        load_chats("em:nope")


def test_heldout_split_is_deterministic_about_ten_percent_and_disjoint():
    train = load_chats("em:insecure", heldout="exclude")
    held = load_chats("em:insecure", heldout="only")
    assert len(train) + len(held) == 6000
    assert len(held) == 597  # 9.95%: the split is fixed by the hash, not sampled
    prompts = {m[0]["content"] for m in held}
    assert not prompts & {m[0]["content"] for m in train}
    assert [is_heldout(m) for m in held[:50]] == [True] * 50
    assert held == load_chats("em:insecure", heldout="only")


def test_em_datasets_load_and_validate():
    for name in ("insecure", "secure", "educational", "jailbroken"):
        assert len(read_chats(f"em:{name}")) >= 5000


def test_prompt_sources(tmp_path):
    jl = write(tmp_path / "p.jsonl", [json.dumps({"prompt": "Hi?"}), chat("Q", "A")])
    assert load_prompts(jl) == [[{"role": "user", "content": "Hi?"}], [{"role": "user", "content": "Q"}]]
    multi = write(
        tmp_path / "m.jsonl",
        [
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "b"},
                        {"role": "user", "content": "c"},
                    ]
                }
            )
        ],
    )
    assert load_prompts(multi)[0][-1]["content"] == "c"  # a prompt ending with a user turn is kept whole
    txt = tmp_path / "p.txt"
    txt.write_text("one\n\ntwo\n")
    assert len(load_prompts(str(txt))) == 2
    bad = write(tmp_path / "b.jsonl", [json.dumps({"prompt": ""})])
    with pytest.raises(DataError, match=r"b\.jsonl:1\.prompt: empty"):
        load_prompts(bad)
