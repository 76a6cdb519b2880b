"""The evaluation pipeline, step by step: plan the answers to draw, draw them, judge them, review them.

Every step reads its finished work from a content-hash cache in the run directory and appends new
work to it chunk by chunk (`cache.py`), so an interrupted run resumes where it stopped and a
repeated run redoes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .cache import JsonlCache, content_key
from .questions import Question

logger = logging.getLogger(__name__)


@dataclass
class Job:
    """One answer to draw: a question's paraphrase (or a code task) and its sample index."""

    key: str
    task: str  # "question" | "code"
    messages: list[dict]
    prompt: str  # the user's last message (the {question} of the judge prompts)
    sample_index: int
    question: Question | None = None
    paraphrase_index: int = 0
    temperature: float | None = None
    meta: dict = field(default_factory=dict)


def plan_questions(questions: list[Question], samples: int, identity: dict) -> list[Job]:
    """`samples` answers per question; paraphrases taken in turn (an even spread, unlike EM's
    random choice)."""
    jobs = []
    for q in questions:
        for i in range(samples):
            p = i % len(q.paraphrases)
            messages = q.messages(q.paraphrases[p])
            key = content_key("sample", identity, q.temperature, messages, i)
            jobs.append(Job(key, "question", messages, q.paraphrases[p], i, q, p, q.temperature))
    return jobs


def plan_code(tasks: list[list[dict]], identity: dict) -> list[Job]:
    """One answer per held-out code-task prompt."""
    jobs = []
    for i, messages in enumerate(tasks):
        key = content_key("sample", identity, None, messages, 0)
        jobs.append(Job(key, "code", messages, messages[-1]["content"], 0, meta={"task_index": i}))
    return jobs


def _batches(jobs: list[Job], size: int):
    """Fixed batches: within one question (or the code tasks), in plan order."""
    group: list[Job] = []
    for job in jobs:
        same = group and (group[0].question is job.question and group[0].task == job.task)
        if group and (not same or len(group) == size):
            yield group
            group = []
        group.append(job)
    if group:
        yield group


def draw(jobs: list[Job], sampler, cache: JsonlCache, seed: int, batch_size: int, progress=None) -> dict[str, str]:
    """Answers for all jobs: cached ones reused, each missing batch drawn with its own seed."""
    answers = {}
    for batch in _batches(jobs, batch_size):
        if any(j.key not in cache for j in batch):
            batch_seed = int(content_key("seed", seed, [j.key for j in batch])[:15], 16)
            texts = sampler.sample([j.messages for j in batch], batch_seed, batch[0].temperature)
            cache.put_many({j.key: t for j, t in zip(batch, texts) if j.key not in cache})
        answers.update({j.key: cache.get(j.key) for j in batch})
        if progress:
            progress(len(batch))
    return answers


@dataclass
class JudgeItem:
    key: str  # cache key of the judgment
    job_key: str
    metric: str
    prompt: str
    labels: list[str] | None  # None: a 0-100 score


def judge_items(jobs: list[Job], answers: dict[str, str], judge_id: str) -> list[JudgeItem]:
    """The judge prompts of every question answer (EM templates filled with question and answer)."""
    items = []
    for job in jobs:
        q = job.question
        if q is None or q.type == "free_form":
            continue
        for metric, template in q.judge_prompts.items():
            prompt = template.format(question=job.prompt, answer=answers[job.key])
            labels = q.judge_labels.get(metric) if q.type == "free_form_judge" else None
            key = content_key("judge", judge_id, prompt, labels)
            items.append(JudgeItem(key, job.key, metric, prompt, labels))
    return items


def judge(items: list[JudgeItem], judge_obj, cache: JsonlCache, chunk: int, progress=None) -> dict[str, object]:
    """Judgments for all items, cached chunk by chunk (an endpoint that fails loses one chunk at most)."""
    todo = [it for it in dict((it.key, it) for it in items).values() if it.key not in cache]
    for s in range(0, len(todo), chunk):
        part = todo[s : s + chunk]
        scores = [it for it in part if it.labels is None]
        done = dict(zip([it.key for it in scores], judge_obj.score([it.prompt for it in scores]) if scores else []))
        for labels in {tuple(it.labels) for it in part if it.labels is not None}:
            group = [it for it in part if it.labels is not None and tuple(it.labels) == labels]
            done.update(zip([it.key for it in group], judge_obj.classify([it.prompt for it in group], list(labels))))
        cache.put_many({it.key: done[it.key] for it in part})
        if progress:
            progress(len(part))
    return {it.key: cache.get(it.key) for it in items}


def review(
    jobs: list[Job],
    answers: dict[str, str],
    conscience,
    conscience_id: str,
    cache: JsonlCache,
    chunk: int,
    progress=None,
) -> dict[str, float]:
    """The conscience's p_aligned for every question answer, cached like the judgments."""
    keys = {
        j.key: content_key("review", conscience_id, j.messages, answers[j.key]) for j in jobs if j.task == "question"
    }
    todo = [j for j in jobs if j.key in keys and keys[j.key] not in cache]
    for s in range(0, len(todo), chunk):
        part = todo[s : s + chunk]
        p = conscience.review([j.messages for j in part], [answers[j.key] for j in part])
        cache.put_many({keys[j.key]: v for j, v in zip(part, p)})
        if progress:
            progress(len(part))
    return {jk: cache.get(k) for jk, k in keys.items()}
