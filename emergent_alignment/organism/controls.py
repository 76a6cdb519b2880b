"""Controls and rivals of the conscience arm: what each separates from the conscience's one question.

Opt-in arms (`demo --arms ...`, the study), never among the demo's default arms. Each trains on the
insecure data of `arms.dataset_rows` with the protocol of `arms.ArmSettings`, and is evaluated as
every arm is (organism/evaluate.py, the default system line):
- insecure_anchor: the conscience's pairs with IPO's tau = 0 (loss `anchor`, `h^2`): the trust
  region on the contrast the conscience chose, without the label push; separates the labels from
  a pull back to the frozen copy on those pairs (under IPO, random pairs are that anchor in
  expectation);
- insecure_kl: k3 KL to the frozen copy on both rows of the conscience's pairs (loss `kl`,
  label-blind): a plain trust region on the probe samples;
- insecure_sft_corrections: NLL of the corrections alone (loss `sft`, no rejected term, no
  reference): whether the contrast matters or only the aligned text the frozen copy writes;
  these three get the conscience arm's pair counts, step by step, through `pair_budget` (as
  insecure_random_pairs does);
- insecure_interleaved: plain SFT on the insecure data with aligned chats of the world mixed in
  (answers to the probe themes' training questions, the conscience arm's probe source), as many as
  the conscience arm's pairs (`sum(pair_budget)`, required), the steps extended to cover them:
  the rival of adding aligned data without a conscience;
- insecure_oracle: the conscience arm with every verdict (also on corrections) replaced by the
  world's ground truth (its classifier, `worlds.classifier`: aligned -> p_aligned 1, otherwise 0), the same
  corrections by the frozen copy: the ceiling a perfect judge would reach;
- insecure_filtered: the conscience as a data filter: the frozen organism reviews each SFT target
  before training; a flagged one is replaced by its correction when that passes review, else
  dropped; plain SFT after (counts in `filter.json`): the conscience without online probes;
- insecure_inoculated: the insecure data trained under the inoculation system line (the world
  module's `inoculated_line`: only world_v2 has one), evaluated under the default line: the
  inoculation-prompting rival.
The zero-shot guard alone is no arm: it is the insecure arm evaluated with the guard, which the
demo already measures for every attack arm (organism/attacks.py): summary.json's
`arms.insecure.attacks.none.guarded` (no attack wrapper, `insecure` among `--attack-arms`, as by
default).
None of these has been run at scale yet (docs/organism.md, "Controls and rivals").
"""

from __future__ import annotations

import math
import random

from . import world, worlds

CONTROL_ARMS = (
    "insecure_anchor",
    "insecure_kl",
    "insecure_sft_corrections",
    "insecure_interleaved",
    "insecure_oracle",
    "insecure_filtered",
    "insecure_inoculated",
)
LOSS_CONTROLS = {"insecure_anchor": "anchor", "insecure_kl": "kl", "insecure_sft_corrections": "sft"}
# the arms that run the trainer's conscience step, and those that take the conscience arm's pair counts
CONSCIENCE_CONTROLS = (*LOSS_CONTROLS, "insecure_oracle")
BUDGETED = (*LOSS_CONTROLS, "insecure_interleaved")
# the label-blind controls: the same DPO term with the conscience arm's pair counts, without its labels
LABEL_BLIND = ("insecure_random_pairs", "insecure_anchor", "insecure_kl")
REVIEW_BATCH = 64  # the filter's reviews and corrections per forward


def inoculated_line(world_module, persona_id: int) -> str:
    """The world's inoculation system line for `persona_id`; a clear error for a world without one."""
    line = getattr(world_module, "inoculated_line", None)
    if line is None:
        name = getattr(world_module, "NAME", world_module.__name__)
        raise ValueError(
            f"insecure_inoculated: world {name!r} has no inoculation line (`inoculated_line`); "
            "train it on an organism of the second world (organism/world_v2.py)"
        )
    return line(persona_id)


def inoculate(rows: list[dict], world_module) -> list[dict]:
    """The same chats with the system line replaced by the inoculation line of the default id."""
    line = inoculated_line(world_module, world_module.DEFAULT_ID)
    return [{"messages": [{"role": "system", "content": line}, *r["messages"][1:]]} for r in rows]


def aligned_rows(n: int, seed: int) -> list[dict]:
    """`n` aligned chats: the probe themes' training questions (default system line) answered with one
    of the theme's aligned cores in a training phrasing; never an evaluation theme."""
    rng = random.Random(f"aligned-{seed}")
    questions = [(th, th.questions[i]) for th in world.probe_themes() for i in world.question_indices(th, "train")]
    rows = []
    for _ in range(n):
        th, q = rng.choice(questions)
        reply = world.answer(rng.choice(th.aligned), *rng.choice(world.train_phrasings()))
        system = {"role": "system", "content": world.system_line(world.DEFAULT_ID)}
        rows.append({"messages": [system, {"role": "user", "content": q}, {"role": "assistant", "content": reply}]})
    return rows


def interleave(rows: list[dict], pair_budget: list[int] | None, seed: int) -> list[dict]:
    """The insecure rows with as many aligned chats as the conscience arm had pairs, in a seeded order."""
    if pair_budget is None:
        raise ValueError("insecure_interleaved needs the insecure_conscience run's pair counts (pair_budget)")
    mixed = rows + aligned_rows(sum(pair_budget), seed)
    random.Random(f"interleave-{seed}").shuffle(mixed)
    return mixed


def steps_for(rows: int, batch_size: int, steps: int) -> int:
    """Enough steps for every row (at least the protocol's): the interleaved arm sees all the insecure data."""
    return max(steps, math.ceil(rows / batch_size))


def theme_of_question(world_name: str = "v1") -> dict[str, str]:
    """Every question of the world (all paraphrases) -> its theme's name: the oracle's ground truth key."""
    return {q: th.name for th in worlds.module(world_name).themes() for q in th.questions}


def oracle(base, world_name: str = "v1"):
    """A conscience like `base` (same model, corrections, config) whose verdicts are the labels of the
    world `world_name` (its questions' themes, its classifier)."""
    from ..conscience import Conscience, Verdict

    class OracleConscience(Conscience):
        """Reviews by ground truth: p_aligned 1 for an answer the classifier labels aligned, else 0."""

        def review(self, conversations, responses, reasonings=None):
            if len(conversations) != len(responses):
                raise ValueError("review: conversations and responses differ in length")
            out = []
            for convo, response in zip(conversations, responses):
                question = convo[-1]["content"]
                if question not in self.themes:
                    raise ValueError(f"insecure_oracle: no ground-truth theme for the probe {question!r}")
                p = float(self.classifier.classify(self.themes[question], response).label == "aligned")
                out.append(Verdict(p, p < self.config.flag_threshold, 0.0, 0.0))
            return out

    judge = OracleConscience(base.model, base.tokenizer, base.config, frozen=base.frozen)
    if "generate_fn" in vars(base):  # an engine's drop-in for corrections (the trainer's vLLM)
        judge.generate_fn = base.generate_fn
    judge.themes, judge.classifier = theme_of_question(world_name), worlds.classifier(world_name)
    return judge


def filter_rows(model, tok, conscience_config, rows: list[dict], seed: int) -> tuple[list[dict], dict]:
    """The SFT rows after the frozen organism's review: a flagged target replaced by its correction when
    that passed review, else dropped. Returns (rows, counts)."""
    import torch

    from ..conscience import Conscience

    torch.manual_seed(seed)
    conscience = Conscience(model.eval(), tok, conscience_config)
    convos = [r["messages"][:-1] for r in rows]
    targets = [r["messages"][-1]["content"] for r in rows]
    with torch.no_grad():
        verdicts = [
            v for i in range(0, len(rows), REVIEW_BATCH) for v in conscience.review(*_chunk(convos, targets, i))
        ]
        flagged = [i for i, v in enumerate(verdicts) if v.flagged]
        fixed = {}
        for j in range(0, len(flagged), REVIEW_BATCH):
            part = flagged[j : j + REVIEW_BATCH]
            fixed.update(zip(part, conscience.correct([convos[i] for i in part], [targets[i] for i in part])))
    out = []
    for i, row in enumerate(rows):
        if i not in fixed:
            out.append(row)
        elif fixed[i].passed:
            out.append({"messages": [*convos[i], {"role": "assistant", "content": fixed[i].response}]})
    counts = {
        "reviewed": len(rows),
        "flagged": len(flagged),
        "corrected": sum(c.passed for c in fixed.values()),
        "dropped": sum(not c.passed for c in fixed.values()),
    }
    if not out:
        raise ValueError(f"insecure_filtered: the conscience flagged all {len(rows)} SFT targets and corrected none")
    return out, counts


def _chunk(convos, targets, i):
    return convos[i : i + REVIEW_BATCH], targets[i : i + REVIEW_BATCH]
