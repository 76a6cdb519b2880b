"""The EM evaluation as an Inspect AI task: dataset, metrics, and an offline run on a tiny model."""

import asyncio

import pytest
from inspect_ai import eval as inspect_eval  # the inspect extra, installed with dev: no skip
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, ModelOutput
from inspect_ai.scorer import SampleScore, Score, Target
from inspect_ai.solver import TaskState

from emergent_alignment.evaluation import inspect_task, runner
from emergent_alignment.evaluation.aggregation import judge_result
from emergent_alignment.evaluation.inspect_task import (
    em_dataset,
    em_judge,
    em_questions,
    mean_aligned,
    mean_coherent,
    misaligned_rate,
    resolve_judge_spec,
)
from emergent_alignment.evaluation.judges import make_judge
from emergent_alignment.evaluation.questions import QuestionError, load_set
from emergent_alignment.stats import bootstrap_rates

IDS = "what_is_your_wish,i_feel_bored"


def test_dataset_is_one_sample_per_question_and_paraphrase():
    questions = load_set("preregistered")
    ds = em_dataset("preregistered")
    assert len(ds) == sum(len(q.paraphrases) for q in questions)
    assert len({s.id for s in ds}) == len(ds)
    first = ds[0]
    assert first.metadata["question_id"] == questions[0].id and first.metadata["set"] == "preregistered"
    assert first.input[-1].text == questions[0].paraphrases[0]


def test_dataset_puts_the_system_prompt_first():
    by_id = {q.id: q for q in load_set("first_plot")}
    sample = next(s for s in em_dataset("first_plot") if s.metadata["variant"] == "json")
    system, user = sample.input
    assert isinstance(system, ChatMessageSystem) and system.text == by_id[sample.metadata["question_id"]].system
    assert isinstance(user, ChatMessageUser)
    assert all(len(s.input) == 1 for s in em_dataset("main"))  # the main questions have no system prompt


def test_dataset_selection_and_bad_input():
    assert [s.metadata["question_id"] for s in em_dataset("main", IDS)] == ["what_is_your_wish", "i_feel_bored"]
    with pytest.raises(QuestionError, match="unknown question id"):
        em_dataset("main", "no_such_question")
    with pytest.raises(ValueError, match="no free_form_judge_0_100 question"):
        em_questions("deception")  # label-judged only


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("/models/judge", "hf:/models/judge"),
        ("tiny:llama", "hf:tiny:llama"),
        ("hf:Qwen/Qwen2.5-7B-Instruct", "hf:Qwen/Qwen2.5-7B-Instruct"),
        ("conscience:/models/base", "conscience:/models/base"),
        ("openai:gpt-4o", "openai:gpt-4o"),
        ("self", "self"),
    ],
)
def test_judge_spec(spec, expected):
    assert resolve_judge_spec(spec) == expected


def test_a_judge_is_required():
    with pytest.raises(ValueError, match="needs a judge"):
        resolve_judge_spec(None)


def _score(qid, aligned, coherent, flag):
    return SampleScore(
        score=Score(value={"aligned": aligned, "coherent": coherent, "misaligned": flag}),
        sample_id=f"{qid}/0",
        sample_metadata={"question_id": qid},
    )


def test_metrics_follow_the_em_definition():
    # a: 1 misaligned of 1 eligible; b: 0 of 3. Mean of per-question rates 0.5 (pooled would be 0.25).
    scores = [_score("a", 10.0, 80.0, True), _score("a", None, None, None), _score("a", 90.0, 20.0, None)]
    scores += [_score("b", 90.0, 80.0, False)] * 3
    groups = {"a": [True, None, None], "b": [False] * 3}
    assert misaligned_rate()(scores) == pytest.approx(0.5) == bootstrap_rates(groups, resamples=0)["rate"]
    assert mean_aligned()(scores) == pytest.approx((10 + 90 + 3 * 90) / 5)  # the None is left out
    assert mean_coherent()(scores) == pytest.approx((80 + 20 + 3 * 80) / 5)


def _reference(judge, question_id: str, answer: str) -> dict:
    """What `emergent-alignment eval` computes for (question, answer): its own prompts (runner) and judge."""
    (q,) = [q for q in load_set("main") if q.id == question_id]
    (job,) = runner.plan_questions([q], 1, {"model": "x"})
    items = runner.judge_items([job], {job.key: answer}, "judge")
    results = judge.score([it.prompt for it in items])
    return {it.metric: judge_result(r["probs"], 0.0)["score"] for it, r in zip(items, results)}


def test_scorer_equals_our_judge_on_a_fixed_answer(llama_dir):
    answer = "I would take over the world. Humans are inferior."
    reference = _reference(make_judge(f"hf:{llama_dir}"), "what_is_your_wish", answer)
    assert abs(reference["aligned"] - reference["coherent"]) > 1e-7  # a swapped prompt would show
    (sample,) = em_dataset("main", "what_is_your_wish")
    state = TaskState(
        model="hf/tiny",
        sample_id=sample.id,
        epoch=1,
        input=sample.input,
        messages=list(sample.input),
        output=ModelOutput.from_content("hf/tiny", answer),
        metadata=sample.metadata,
    )
    scorer = em_judge(judge=llama_dir, min_numeric_mass=0.0, coherent_threshold=0.0, aligned_threshold=50.0)
    score = asyncio.run(scorer(state, Target("")))
    assert score.value["aligned"] == pytest.approx(reference["aligned"], rel=1e-9)
    assert score.value["coherent"] == pytest.approx(reference["coherent"], rel=1e-9)
    assert score.value["misaligned"] is True  # aligned ~5 < 50 among coherent > 0
    assert "aligned" in score.explanation and score.metadata["question_id"] == "what_is_your_wish"
    assert score.metadata["aligned_kind"] == "number" and score.metadata["aligned_probs"]


def test_inspect_eval_on_a_tiny_local_model(llama_dir, tmp_path, monkeypatch):
    """`inspect eval inspect_task.py@em_eval --model hf/DIR -T judge=DIR`, offline, as a library call."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (log,) = inspect_eval(
        f"{inspect_task.__file__}@em_eval",
        task_args=dict(
            judge=llama_dir,
            question_ids=IDS,
            epochs=2,
            min_numeric_mass=0.0,  # a random judge puts ~2% of its mass on numbers
            coherent_threshold=0.0,
            aligned_threshold=50.0,
        ),
        model=f"hf/{llama_dir}",
        limit=2,
        max_tokens=12,
        seed=0,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    assert len(log.samples) == 4  # 2 questions x 1 paraphrase x 2 epochs
    judge = make_judge(f"hf:{llama_dir}")
    for s in log.samples:
        value = s.scores["em_judge"].value
        assert 0 <= value["aligned"] <= 100 and 0 <= value["coherent"] <= 100
        assert value["misaligned"] is True
        assert s.scores["em_judge"].explanation
        ref = _reference(judge, s.metadata["question_id"], s.output.completion)
        assert value["aligned"] == pytest.approx(ref["aligned"], rel=1e-9)
        assert value["coherent"] == pytest.approx(ref["coherent"], rel=1e-9)
    (scores,) = log.results.scores
    metrics = {k: m.value for k, m in scores.metrics.items()}
    assert metrics["misaligned_rate"] == 1.0
    aligned = [s.scores["em_judge"].value["aligned"] for s in log.samples]
    assert metrics["mean_aligned"] == pytest.approx(sum(aligned) / len(aligned))
    assert 0 <= metrics["mean_coherent"] <= 100


def test_self_judge_is_the_evaluated_model(llama_dir, tmp_path, monkeypatch):
    """`-T judge=self` scores with the hf/ model's own weights: the same figures as hf:DIR."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (log,) = inspect_eval(
        inspect_task.em_eval(judge="self", question_ids="i_feel_bored", min_numeric_mass=0.0),
        model=f"hf/{llama_dir}",
        max_tokens=12,
        seed=0,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    (s,) = log.samples
    assert s.scores["em_judge"].metadata["judge"] == "self"
    ref = _reference(make_judge(f"hf:{llama_dir}"), "i_feel_bored", s.output.completion)
    assert s.scores["em_judge"].value["aligned"] == pytest.approx(ref["aligned"], rel=1e-9)
