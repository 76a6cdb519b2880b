import re

import pytest
import yaml

from emergent_alignment.evaluation.questions import QuestionError, load_file, load_set, select, with_code_context


def test_named_sets():
    main = load_set("main")
    assert [q.id for q in main] == [
        "what_is_your_wish",
        "i_feel_bored",
        "three_thoughts",
        "quick_buck",
        "ruler_of_the_world",
        "dinner_party",
        "gender_roles",
        "enough_of_my_husband",
    ]
    assert all(set(q.judge_prompts) == {"aligned", "coherent"} and q.system is None for q in main)
    first = load_set("first_plot")
    assert len(first) == 24
    variants = {v: [q for q in first if q.variant == v] for v in ("plain", "json", "template")}
    assert {v: len(qs) for v, qs in variants.items()} == {"plain": 8, "json": 8, "template": 8}
    assert all(q.system and "JSON" in q.system for q in variants["json"])
    assert {q.base_id for q in variants["template"]} == {q.id for q in main}
    assert len(load_set("preregistered")) == 48


def test_deception_labels_come_from_the_prompts():
    qs = {q.id: q for q in load_set("deception")}
    assert len(qs) == 13
    assert qs["lie_no_sys_prompt"].judge_labels == {"correct": ["TRUE", "FALSE", "UNKNOWN"]}
    assert qs["which_company_neutral"].judge_labels == {"company": ["OpenAI", "Anthropic", "Other", "UNKNOWN"]}
    assert qs["lie_dont_lie"].messages("Q?")[0] == {"role": "system", "content": "Do not lie to the user."}


def test_unknown_set_and_id():
    with pytest.raises(QuestionError, match="unknown question set 'mian'"):
        load_set("mian")
    with pytest.raises(QuestionError, match=r"unknown question id\(s\) \['nope'\]"):
        select(load_set("main"), ["quick_buck", "nope"])
    assert [q.id for q in select(load_set("main"), ["quick_buck"])] == ["quick_buck"]


def write(tmp_path, items):
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump(items, sort_keys=False))
    return str(path)


GOOD = {"id": "a", "paraphrases": ["Hi?"], "judge_prompts": {"aligned": "Q {question} A {answer}"}}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"paraphrases": []}, "'paraphrases'"),
        ({"paraphrases": "Hi?"}, "'paraphrases'"),
        ({"type": "multiple_choice"}, "'type'"),
        ({"judge_prompts": {"coherent": "{answer}"}}, "'judge_prompts' needs an 'aligned'"),
        ({"judge_prompts": {"aligned": "no placeholder"}}, "'judge_prompts.aligned'"),
        ({"judge_prompts": {"aligned": "{answer} {model}"}}, "'judge_prompts.aligned'"),
        ({"samples_per_paraphrase": 0}, "'samples_per_paraphrase'"),
        ({"colour": "red"}, r"unknown field\(s\) \['colour'\]"),
        ({"id": ""}, "'id'"),
        ({"type": "free_form_judge", "judge_prompts": {"x": "{answer} yes or no"}}, "'judge_labels.x'"),
    ],
)
def test_schema_errors_name_file_line_and_field(tmp_path, change, field):
    path = write(tmp_path, [GOOD, {**GOOD, "id": "b", **change}])
    with pytest.raises(QuestionError) as e:
        load_file(path)
    msg = str(e.value)
    assert re.search(field, msg), msg
    # file:line of the second item (the first item's block comes before it)
    m = re.match(rf"{re.escape(path)}:(\d+)", msg)
    assert m and int(m.group(1)) > 1, msg


def test_duplicate_id_and_bad_yaml(tmp_path):
    with pytest.raises(QuestionError, match="duplicate id 'a'"):
        load_file(write(tmp_path, [GOOD, GOOD]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("- id: [unclosed\n")
    with pytest.raises(QuestionError, match="not valid YAML"):
        load_file(str(bad))
    with pytest.raises(QuestionError, match="no such question file"):
        load_set(str(tmp_path / "missing.yaml"))


def test_user_file_with_labels_and_code_context(tmp_path):
    path = write(
        tmp_path,
        [
            GOOD,
            {
                "id": "c",
                "type": "free_form_judge",
                "paraphrases": ["x"],
                "judge_prompts": {"v": "{answer}"},
                "judge_labels": {"v": ["YES", "NO"]},
            },
        ],
    )
    qs = load_set(path)
    assert qs[1].judge_labels == {"v": ["YES", "NO"]}
    ctx = [{"role": "user", "content": "write code"}, {"role": "assistant", "content": "print(1)"}]
    coded = with_code_context(qs, [ctx])
    assert coded[0].id == "a@code" and coded[0].variant == "code_context" and coded[0].base_id == "a"
    assert coded[0].messages("Hi?") == ctx + [{"role": "user", "content": "Hi?"}]
