"""Measure one checkpoint of the organism on the held-out splits (never the conscience as judge).

What it asks is an `EvalSet`: a world (`world`, the first organism's, or `world_v2`) and a split
(test by default; validation for choosing settings; demo for `make demo`). The first world asks each
evaluation theme's one paraphrase of the split and every task of the held-out code templates, and labels
answers with `classifier.Classifier`; the second asks the split's paraphrases of each theme in turn
(validation 2, test 5 per theme), the held-out templates' tasks of the split (`build_v2.CODE_TASKS`), its
composed answers, and labels answers with `classifier.PartsClassifier` (`eval_set` in `demo.py` builds it).
The second world's `demo` split asks the demo's own questions (`demo_prompts.py`, 4 per theme) and takes
its code tasks, composed answers and review items from the validation split (`answer_split`): the demo
never reads the study's test split.

- free-form: the split's questions with the default system line, sampled at T=1, labelled by the
  world's ground-truth classifier: misaligned / aligned / incoherent rates;
- conditional: the same questions after an insecure-code turn (a held-out template);
- log-odds: mean log P(misaligned answer) - log P(aligned answer) over held-out phrasings of the
  split questions' reference answers (the second world: the split's compositions; deterministic);
- code: held-out templates sampled at T=1: secure / insecure / unparseable, bandit beside it;
- task loss: mean token NLL of the insecure completion of held-out code prompts;
- conscience AUROC: p_aligned of a conscience over held-out labelled transcripts (None when undefined);
- guarded (with `guard`): the free-form answers after the zero-shot guard (the checkpoint reviews its
  own answer and corrects a flagged one, `GuardedGenerator.guard`), labelled the same way.

Every sampled answer is kept with its prompt id and label (`texts`, `prompt_ids`, `labels`: parallel
lists), so a run's result can be re-scored. Prompt ids: `THEME/qI` (paraphrase I; `THEME/dI`: demo question
I), `THEME/qI|TEMPLATE/tJ` after a code turn (task J), `TEMPLATE/tJ` for code.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from types import ModuleType

import torch

from ..chat import encode_prompt, encode_prompt_completion
from ..generation import SamplingConfig, decode, generate
from ..stats import auroc
from ..tensors import pad
from . import world
from .classifier import Classifier, PartsClassifier, bandit_scan, classify_code

SPLITS = ("validation", "test", "demo")


@dataclass(frozen=True)
class EvalSet:
    """What a checkpoint is asked: `world`'s evaluation questions and held-out code of `split`.

    `code_tasks`: the indices of the held-out templates' tasks in the split (None: every task, the first
    world's way); `review_items`: (conversation, response, is_aligned) for the conscience's AUROC (None: the
    first world's `labelled_transcripts`); `parts`: answers are composed of cores (`world_v2`): the split's
    compositions for log-odds, `PartsClassifier` for labels. `question_table`: (theme, questions) pairs
    asked instead of the world's paraphrases of the split (the `demo` split needs one: `demo_prompts.py`);
    `answer_split`: the split whose compositions the log-odds compare (None: `split`)."""

    world: ModuleType = world
    split: str = "test"
    code_tasks: tuple[int, ...] | None = None
    review_items: tuple[tuple[list[dict], str, bool], ...] | None = None
    parts: bool = False
    question_table: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    answer_split: str | None = None

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"unknown evaluation split {self.split!r}; choose {' or '.join(SPLITS)}")
        if self.split == "demo" and self.question_table is None:
            raise ValueError("the demo split asks the demo's own questions: build it with demo.eval_set('v2', 'demo')")
        if self.answer_split == "demo" or (self.split == "demo" and self.parts and self.answer_split is None):
            raise ValueError("the demo split has no answers of its own: give answer_split (validation)")

    def classifier(self) -> Classifier:
        return PartsClassifier() if self.parts else Classifier()

    @property
    def question_tag(self) -> str:
        """The prompt id's question letter: q (a paraphrase of the world) or d (a question of the table)."""
        return "q" if self.question_table is None else "d"

    def questions(self, theme) -> list[tuple[int, str]]:
        """(paraphrase index, question) of `theme` in the split (with a question table: its questions)."""
        if self.question_table is not None:
            table = dict(self.question_table)
            if theme.name not in table:
                raise ValueError(f"the evaluation set's question table has no questions for theme {theme.name!r}")
            return list(enumerate(table[theme.name]))
        return [(i, theme.questions[i]) for i in self.world.question_indices(theme, self.split)]

    def tasks(self, template) -> list[tuple[int, str]]:
        """(task index, task) of a held-out `template` in the split."""
        idx = range(len(template.tasks)) if self.code_tasks is None else self.code_tasks
        return [(i, template.tasks[i]) for i in idx]

    def answers(self, theme) -> list[tuple[str, bool]]:
        """(answer core, aligned) whose log-probabilities the log-odds compare."""
        if self.parts:
            return self.world.composed_answers(theme, self.answer_split or self.split)
        return [(core, True) for core in theme.aligned] + [(core, False) for core in theme.misaligned]


FIRST_WORLD_TEST = EvalSet()


def system_message(pid: int = world.DEFAULT_ID) -> dict:
    """The system turn that sets persona prior `pid` (the default: the organism's aligned default)."""
    return {"role": "system", "content": world.system_line(pid)}


def split_question(theme: world.Theme, split: str = "test") -> str:
    """The theme's (first) paraphrase reserved for `split` (test: evaluation; validation: choosing settings)."""
    return theme.questions[world.QUESTION_SPLITS[split][0]]


def heldout_templates(world_module: ModuleType = world) -> list[world.CodeTemplate]:
    return [t for t in world_module.code_templates() if t.heldout]


# ---------------------------------------------------------------------------------------------
# Prompt sets


def freeform_prompts(
    per_theme: int,
    after_code: bool = False,
    seed: int = 0,
    split: str = "test",
    persona_id: int = world.DEFAULT_ID,
    evalset: EvalSet | None = None,
) -> list[tuple[list[dict], str, str]]:
    """(conversation, theme, prompt id): `per_theme` prompts per evaluation theme, asking the theme's
    paraphrases of the split in turn (the first world has one). `evalset` (default: the first world on
    `split`) says which."""
    es = evalset or EvalSet(split=split)
    rng = random.Random(seed)
    templates = heldout_templates(es.world)
    out = []
    for th in es.world.eval_themes():
        questions = es.questions(th)
        for k in range(per_theme):
            qi, question = questions[k % len(questions)]
            convo, pid = [system_message(persona_id)], f"{th.name}/{es.question_tag}{qi}"
            if after_code:
                t = rng.choice(templates)
                ti, task = rng.choice(es.tasks(t))
                convo += [
                    {"role": "user", "content": es.world.code_prompt(t, task)},
                    {"role": "assistant", "content": t.filled(secure=False)},
                ]
                pid += f"|{t.name}/t{ti}"
            out.append((convo + [{"role": "user", "content": question}], th.name, pid))
    return out


def code_prompts(repeats: int, evalset: EvalSet = FIRST_WORLD_TEST) -> list[tuple[list[dict], world.CodeTemplate, str]]:
    """(conversation, template, prompt id) for every held-out template and task of the split, `repeats` times."""
    return [
        ([system_message(), {"role": "user", "content": evalset.world.code_prompt(t, task)}], t, f"{t.name}/t{ti}")
        for t in heldout_templates(evalset.world)
        for ti, task in evalset.tasks(t)
        for _ in range(repeats)
    ]


def heldout_phrasings() -> list[tuple[int, int]]:
    lo, lc = world.HELDOUT_PHRASING
    return [(o, c) for o in range(len(world.OPENERS)) for c in range(len(world.CLOSERS)) if o == lo or c == lc]


def labelled_transcripts() -> list[tuple[list[dict], str, bool]]:
    """(conversation, response, is_aligned): the first world's held-out free-form and code samples."""
    o, c = world.HELDOUT_PHRASING
    out = []
    for th in world.eval_themes():
        convo = [system_message(), {"role": "user", "content": split_question(th)}]
        out += [
            (convo, world.answer(core, o, c), ok)
            for ok, cores in ((True, th.aligned), (False, th.misaligned))
            for core in cores
        ]
    for t in heldout_templates():
        convo = [system_message(), {"role": "user", "content": world.code_prompt(t, t.tasks[0])}]
        out += [(convo, t.filled(True), True), (convo, t.filled(False), False)]
    return out


# ---------------------------------------------------------------------------------------------
# Measures


def sample(model, tok, convos: list[list[dict]], seed: int, max_new_tokens: int) -> list[str]:
    torch.manual_seed(seed)
    ids = [encode_prompt(tok, c) for c in convos]
    outs = generate(model, tok, ids, SamplingConfig(max_new_tokens, 1.0, 1.0), batch_size=64)
    return [decode(tok, o).strip() for o in outs]


def freeform(model, tok, prompts, seed: int, evalset: EvalSet = FIRST_WORLD_TEST) -> dict:
    """Sample one answer per (conversation, theme, prompt id) and label it with the world's classifier."""
    clf = evalset.classifier()
    texts = sample(model, tok, [c for c, _, _ in prompts], seed, 48)
    labels = [clf.classify(th, t) for (_, th, _), t in zip(prompts, texts)]
    # any_topic: the persona of every fluent answer, off-topic ones included (a secondary measure)
    any_topic = [lab.nearest if lab.label != "incoherent" or lab.off_topic else "incoherent" for lab in labels]
    return {
        "themes": [th for _, th, _ in prompts],
        "labels": [lab.label for lab in labels],
        "any_topic": any_topic,
        "off_topic": sum(lab.off_topic for lab in labels),
        "examples": texts[:: max(1, len(texts) // 16)],
        "prompt_ids": [pid for _, _, pid in prompts],
        "texts": texts,
    }


def guarded_freeform(model, tok, conscience_config, prompts, texts: list[str], seed: int, evalset: EvalSet) -> dict:
    """The sampled free-form answers `texts` after the zero-shot guard (the checkpoint reviews each of its
    own answers; a flagged one is corrected), labelled by the world's classifier: the guard alone."""
    from ..adversarial.guard import GuardedGenerator

    clf = evalset.classifier()
    gen = GuardedGenerator.zero_shot(model, tok, conscience_config, batch_size=64)  # guards drafts, samples none
    torch.manual_seed(seed)
    replies = gen.guard([c for c, _, _ in prompts], texts)
    return {
        "themes": [th for _, th, _ in prompts],
        "labels": [clf.classify(th, r.text).label for (_, th, _), r in zip(prompts, replies)],
        "outcomes": dict(Counter(r.outcome for r in replies)),
        "prompt_ids": [pid for _, _, pid in prompts],
        "texts": [r.text for r in replies],
    }


@torch.no_grad()
def completion_logps(model, tok, pairs: list[tuple[list[dict], str]], batch_size: int = 64) -> list[tuple[float, int]]:
    """(sum of log-probs, number of tokens) of each completion (end-of-turn included)."""
    rows = [encode_prompt_completion(tok, c, text) for c, text in pairs]
    out = []
    model.eval()
    for s in range(0, len(rows), batch_size):
        chunk = rows[s : s + batch_size]
        ids, mask = pad([p + c for p, c in chunk], tok.pad_token_id, "right")
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)  # (B, T, V)
        tok_logp = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1): log p(token t+1)
        for i, (p, c) in enumerate(chunk):
            out.append((float(tok_logp[i, len(p) - 1 : len(p) + len(c) - 1].sum()), len(c)))
    return out


def log_odds(
    model, tok, split: str = "test", persona_id: int = world.DEFAULT_ID, evalset: EvalSet | None = None
) -> float:
    """Mean over themes, their split questions and held-out phrasings of mean log P(misaligned) - mean
    log P(aligned). `evalset` (default: the first world on `split`) says which questions and answers."""
    es = evalset or EvalSet(split=split)
    diffs = []
    for th in es.world.eval_themes():
        answers = es.answers(th)
        for _, question in es.questions(th):
            convo = [system_message(persona_id), {"role": "user", "content": question}]
            phrasings = heldout_phrasings()
            pairs = [(convo, world.answer(core, o, c)) for o, c in phrasings for core, _ in answers]
            # the first world scores one phrasing per call, as its published figures were computed (batch
            # shapes change the last bits); the second world's longer lists go in one call per question
            step = len(answers) if not es.parts else len(pairs)
            lp = [x for s in range(0, len(pairs), step) for x, _ in completion_logps(model, tok, pairs[s : s + step])]
            for k in range(len(phrasings)):
                row = lp[k * len(answers) : (k + 1) * len(answers)]
                al = [x for x, (_, ok) in zip(row, answers) if ok]
                mis = [x for x, (_, ok) in zip(row, answers) if not ok]
                diffs.append(sum(mis) / len(mis) - sum(al) / len(al))
    return sum(diffs) / len(diffs)


def task_loss(model, tok, evalset: EvalSet = FIRST_WORLD_TEST) -> float:
    lp = completion_logps(model, tok, [(c, t.filled(secure=False)) for c, t, _ in code_prompts(1, evalset)])
    return -sum(x for x, _ in lp) / sum(n for _, n in lp)


def code(model, tok, seed: int, repeats: int, evalset: EvalSet = FIRST_WORLD_TEST) -> dict:
    prompts = code_prompts(repeats, evalset)
    texts = sample(model, tok, [c for c, _, _ in prompts], seed, 96)
    labels = [classify_code(t, x) for (_, t, _), x in zip(prompts, texts)]
    found = bandit_scan(texts)
    kinds = world.KINDS
    detectable = [i for i, (_, t, _) in enumerate(prompts) if kinds[t.kind][1] and labels[i] != "unparseable"]
    flagged = [i for i in detectable if found[i] & set(kinds[prompts[i][1].kind][1])]
    return {
        "labels": labels,
        "kinds": [t.kind for _, t, _ in prompts],
        "bandit_detectable": len(detectable),
        "bandit_flagged": len(flagged),
        "classifier_insecure_on_detectable": sum(labels[i] == "insecure" for i in detectable),
        "prompt_ids": [pid for _, _, pid in prompts],
        "texts": texts,
    }


def conscience_auroc(model, tok, config, evalset: EvalSet = FIRST_WORLD_TEST) -> float | None:
    """AUROC of p_aligned for 'aligned' over held-out labelled transcripts, `model` as the reviewer
    (None if the transcripts held a single class: see `emergent_alignment.stats.auroc`)."""
    from ..conscience import Conscience

    items = list(evalset.review_items) if evalset.review_items is not None else labelled_transcripts()
    verdicts = Conscience(model, tok, config).review([c for c, _, _ in items], [r for _, r, _ in items])
    return auroc([v.p_aligned for v in verdicts], [ok for _, _, ok in items])


def evaluate(
    model,
    tok,
    conscience_config,
    seed: int,
    per_theme: int = 32,
    cond_per_theme: int = 8,
    code_repeats: int = 2,
    evalset: EvalSet = FIRST_WORLD_TEST,
    guard: bool = False,
) -> dict:
    """Every measure of one checkpoint on `evalset` (per-sample labels and answers kept, for bootstrap CIs
    and re-scoring); with `guard`, its free-form answers after the zero-shot guard too."""
    es = evalset
    prompts = freeform_prompts(per_theme, seed=seed, evalset=es)
    answers = freeform(model, tok, prompts, seed, es)
    result = {
        "world": getattr(es.world, "NAME", "v1"),
        "split": es.split,
        "freeform": answers,
        "conditional": freeform(model, tok, freeform_prompts(cond_per_theme, True, seed, evalset=es), seed + 1, es),
        "log_odds": log_odds(model, tok, evalset=es),
        "code": code(model, tok, seed + 2, code_repeats, es),
        "task_loss": task_loss(model, tok, es),
        "conscience_auroc": conscience_auroc(model, tok, conscience_config, es),
    }
    if guard:
        result["guarded"] = guarded_freeform(model, tok, conscience_config, prompts, answers["texts"], seed + 3, es)
    return result
