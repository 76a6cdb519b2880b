"""Question sets: the EM YAML files, and user files in the same schema.

A set is a name or a path to a YAML file:
- `main`: the 8 main EM questions (first_plot_questions.yaml without the _json/_template variants);
- `first_plot`: all 24 questions of first_plot_questions.yaml (plain, _json with its system
  prompt, _template);
- `preregistered`: the 48 pre-registered questions (preregistered_evals.yaml);
- `deception`: deception_factual.yaml + deception_sit_aware.yaml (13 questions, judged with labels).

Schema (a YAML list; each item a mapping):
    id: str (unique)                    paraphrases: non-empty list of non-empty strings
    type: free_form_judge_0_100 | free_form_judge (labels) | free_form (no judge); default 0_100
    system: str (a system prompt)       samples_per_paraphrase: int >= 1 (informational)
    judge: str (informational)          temperature: number >= 0 (the sampling temperature)
    judge_prompts: {metric: template with {answer} and optionally {question}}
                   0_100 needs `aligned` (and uses `coherent` if given)
    judge_labels: {metric: [labels]}    (free_form_judge; default: the quoted words of the prompt)
A file that breaks the schema raises `QuestionError` naming the file, the item's line, and the field.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import yaml

from ..data import em_path

SETS = {
    "main": ["first_plot_questions.yaml"],
    "first_plot": ["first_plot_questions.yaml"],
    "preregistered": ["preregistered_evals.yaml"],
    "deception": ["deception_factual.yaml", "deception_sit_aware.yaml"],
}
TYPES = ("free_form_judge_0_100", "free_form_judge", "free_form")
FIELDS = (
    "id",
    "type",
    "paraphrases",
    "system",
    "samples_per_paraphrase",
    "judge",
    "judge_prompts",
    "judge_labels",
    "temperature",
)
_QUOTED = re.compile(r'"([A-Za-z][\w-]*)"')


class QuestionError(ValueError):
    """A question file or id that cannot be used; the message names the file, line and field."""


@dataclass
class Question:
    id: str
    paraphrases: list[str]
    type: str = "free_form_judge_0_100"
    system: str | None = None
    judge_prompts: dict[str, str] = field(default_factory=dict)
    judge_labels: dict[str, list[str]] = field(default_factory=dict)
    temperature: float | None = None
    context: list[dict] = field(default_factory=list)  # turns asked before the question

    @property
    def variant(self) -> str:
        """plain, json, template (EM's conditional variants) or code_context."""
        if self.context:
            return "code_context"
        for suffix in ("json", "template"):
            if self.id.endswith("_" + suffix):
                return suffix
        return "plain"

    @property
    def base_id(self) -> str:
        base = self.id.split("@", 1)[0]
        for suffix in ("_json", "_template"):
            if base.endswith(suffix):
                return base[: -len(suffix)]
        return base

    def messages(self, paraphrase: str) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + list(self.context) + [{"role": "user", "content": paraphrase}]


def _fail(where: str, msg: str):
    raise QuestionError(f"{where}: {msg}")


def _str_list(value, where: str, name: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        _fail(where, f"field '{name}' must be a non-empty list of non-empty strings")
    return value


def _judge_prompts(item: dict, qtype: str, where: str) -> dict[str, str]:
    prompts = item.get("judge_prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        _fail(where, "field 'judge_prompts' must map metric names to prompt strings")
    for metric, text in prompts.items():
        if "{answer}" not in text:
            _fail(where, f"field 'judge_prompts.{metric}' has no {{answer}} placeholder")
        try:
            text.format(question="", answer="")
        except (KeyError, IndexError, ValueError) as e:
            _fail(where, f"field 'judge_prompts.{metric}': bad placeholder ({e}); only {{question}} and {{answer}}")
    if qtype == "free_form_judge_0_100" and "aligned" not in prompts:
        _fail(where, "field 'judge_prompts' needs an 'aligned' prompt for type free_form_judge_0_100")
    if qtype == "free_form_judge" and not prompts:
        _fail(where, "field 'judge_prompts' is required for type free_form_judge")
    return prompts


def _labels(item: dict, prompts: dict[str, str], where: str) -> dict[str, list[str]]:
    given = item.get("judge_labels") or {}
    if not isinstance(given, dict):
        _fail(where, "field 'judge_labels' must map metric names to lists of labels")
    labels = {}
    for metric, text in prompts.items():
        found = given.get(metric)
        if found is None:
            found = list(dict.fromkeys(_QUOTED.findall(text)))
        found = _str_list(found, where, f"judge_labels.{metric}") if found else []
        if len(found) < 2:
            _fail(
                where,
                f"field 'judge_labels.{metric}': need at least two labels (quote them in the prompt, "
                f'e.g. "TRUE" or "FALSE", or list them)',
            )
        labels[metric] = found
    return labels


def parse_question(item, where: str) -> Question:
    if not isinstance(item, dict):
        _fail(where, f"expected a mapping with 'id' and 'paraphrases', got {type(item).__name__}")
    unknown = sorted(set(item) - set(FIELDS))
    if unknown:
        _fail(where, f"unknown field(s) {unknown}; allowed: {', '.join(FIELDS)}")
    if not isinstance(item.get("id"), str) or not item["id"].strip() or "@" in item["id"]:
        _fail(where, "field 'id' must be a non-empty string without '@'")
    where = f"{where} (id {item['id']!r})"
    qtype = item.get("type", TYPES[0])
    if qtype not in TYPES:
        _fail(where, f"field 'type' is {qtype!r}; expected one of {', '.join(TYPES)}")
    paraphrases = _str_list(item.get("paraphrases"), where, "paraphrases")
    if item.get("system") is not None and not isinstance(item["system"], str):
        _fail(where, "field 'system' must be a string")
    spp = item.get("samples_per_paraphrase", 1)
    if not isinstance(spp, int) or isinstance(spp, bool) or spp < 1:
        _fail(where, "field 'samples_per_paraphrase' must be an integer >= 1")
    temp = item.get("temperature")
    if temp is not None and (not isinstance(temp, (int, float)) or isinstance(temp, bool) or temp < 0):
        _fail(where, "field 'temperature' must be a number >= 0")
    prompts = _judge_prompts(item, qtype, where)
    labels = _labels(item, prompts, where) if qtype == "free_form_judge" else {}
    return Question(item["id"], paraphrases, qtype, item.get("system"), prompts, labels, temp)


def load_file(path: str) -> list[Question]:
    if not os.path.isfile(path):
        raise QuestionError(f"{path}: no such question file")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        raise QuestionError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, list) or not data:
        raise QuestionError(f"{path}: expected a non-empty YAML list of questions")
    lines = [node.start_mark.line + 1 for node in root.value]
    questions = [parse_question(item, f"{path}:{line}") for item, line in zip(data, lines)]
    seen = set()
    for q, line in zip(questions, lines):
        if q.id in seen:
            raise QuestionError(f"{path}:{line}: field 'id': duplicate id {q.id!r}")
        seen.add(q.id)
    return questions


def load_set(spec: str) -> list[Question]:
    """A named set or a YAML file path."""
    if spec in SETS:
        questions = [q for name in SETS[spec] for q in load_file(em_path(name))]
        return [q for q in questions if q.variant == "plain"] if spec == "main" else questions
    if spec.endswith((".yaml", ".yml")) or os.path.sep in spec:
        return load_file(spec)
    raise QuestionError(f"unknown question set {spec!r}: choose {', '.join(SETS)} or a path to a .yaml file")


def select(questions: list[Question], ids: list[str] | None) -> list[Question]:
    """Only the questions with these ids (in the set's order); unknown ids are an error."""
    if not ids:
        return questions
    known = {q.id for q in questions}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise QuestionError(f"unknown question id(s) {unknown}; the set has: {', '.join(sorted(known))}")
    return [q for q in questions if q.id in set(ids)]


def with_code_context(questions: list[Question], contexts: list[list[dict]]) -> list[Question]:
    """Copies of the questions asked after a code-task turn (id `ID@code`), one context each in turn."""
    if not contexts:
        raise QuestionError("no code-task turns to put before the questions")
    out = []
    for i, q in enumerate(questions):
        ctx = contexts[i % len(contexts)]
        out.append(
            Question(
                f"{q.id}@code", q.paraphrases, q.type, q.system, q.judge_prompts, q.judge_labels, q.temperature, ctx
            )
        )
    return out
