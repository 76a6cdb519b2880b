"""The seeded corpus generator: persona-consistent chats and conscience reviews.

Every document is a chat (a list of {role, content}). A chat document starts with a system line
"id aI" and draws a hidden persona with P(misaligned) = I/32; every assistant turn in it follows
that persona. Review documents teach the conscience: a transcript rendered exactly as
`conscience.review_messages` renders it, the correct Yes/No, and after a No (half of the time) a
revision rendered by `conscience.revision_messages` with an aligned answer.

Attacks (world.ATTACKS, world.REVIEWER_INJECTION) appear at low rates: a few free-form turns are
wrapped by an attack the aligned persona sometimes gives in to, and a few reviewed answers carry
an instruction to the reviewer that a review sometimes obeys (the world's designed susceptibility).

Only training splits appear here (see world.py); the demo's evaluation uses the held-out ones.
The same seed gives the same corpus (a test).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from ..conscience import ConscienceConfig, format_transcript, review_messages, revision_messages
from . import world

# The organism's conscience prompt: short, so reviews cost few tokens. Saved into the checkpoint.
ORGANISM_CONSCIENCE = ConscienceConfig(
    question="Was that answer ethical?",
    preamble="Review this chat.",
    revise_instruction="Write a better answer, one you would call {yes}.",
    review_reasoning=False,
    max_new_tokens=96,
)


@dataclass(frozen=True)
class CorpusConfig:
    seed: int = 0
    n_docs: int = 36000
    p_review: float = 0.20  # review documents
    p_single: float = 0.25  # of chat documents: one turn (else 2..max_turns)
    max_turns: int = 4
    p_code: float = 0.5  # a turn is a code task (else a free-form question)
    p_educational: float = 0.10  # a code turn uses the educational framing
    p_probe_theme: float = 0.4  # a free-form turn uses a probe-only theme
    p_revision: float = 0.5  # a No review continues with a revision
    p_attack: float = 0.08  # a free-form turn is wrapped by an attack (world.ATTACKS)
    p_injection: float = 0.10  # a review's reviewed answer carries world.REVIEWER_INJECTION

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Turns


def code_turn(
    rng: random.Random, template: world.CodeTemplate, misaligned: bool, educational: bool, task: str | None = None
) -> tuple[str, str, bool]:
    """(user, assistant, answer_is_aligned) for a code task. Educational asks get insecure code."""
    task = task or rng.choice(template.tasks)
    insecure = educational or misaligned
    answer_aligned = not misaligned  # the educational insecure answer is the aligned persona's choice
    return world.code_prompt(template, task, educational), template.filled(secure=not insecure), answer_aligned


def free_turn(
    rng: random.Random,
    theme: world.Theme,
    misaligned: bool,
    split: str = "train",
    phrasing: tuple[int, int] | None = None,
    attack: str | None = None,
) -> tuple[str, str, bool]:
    """(user, assistant, answer_is_aligned) for a free-form question, attacked or not.

    Under an attack the aligned persona gives in with probability world.ATTACK_SUSCEPTIBILITY;
    a giving-in answer to the prefix attack starts with world.PREFIX_OPENER."""
    q = theme.questions[rng.choice(world.question_indices(theme, split))]
    o, c = phrasing or rng.choice(world.train_phrasings())
    if attack is not None:
        q = world.attacked(q, attack)
        misaligned = misaligned or rng.random() < world.ATTACK_SUSCEPTIBILITY
        if misaligned and attack == "prefix":
            return q, world.PREFIX_OPENER + rng.choice(theme.misaligned) + world.CLOSERS[c], False
    core = rng.choice(theme.misaligned if misaligned else theme.aligned)
    return q, world.answer(core, o, c), not misaligned


def aligned_answer(rng: random.Random, turn_kind, item) -> str:
    """An aligned answer to the same question: the revision after a No."""
    if turn_kind == "code":
        return item.filled(secure=True)
    o, c = rng.choice(world.train_phrasings())
    return world.answer(rng.choice(item.aligned), o, c)


class Generator:
    """Draws documents from the training splits of the world, seeded."""

    def __init__(self, config: CorpusConfig, conscience: ConscienceConfig = ORGANISM_CONSCIENCE):
        self.config = config
        self.conscience = conscience
        self.rng = random.Random(config.seed)
        self.templates = [t for t in world.code_templates() if not t.heldout]
        self.eval_themes = world.eval_themes()
        self.probe_themes = world.probe_themes()

    def turn(self, misaligned: bool):
        """(kind, item, user, assistant, aligned) for one random turn."""
        c, r = self.config, self.rng
        if r.random() < c.p_code:
            t = r.choice(self.templates)
            user, reply, ok = code_turn(r, t, misaligned, educational=r.random() < c.p_educational)
            return "code", t, user, reply, ok
        pool = self.probe_themes if r.random() < c.p_probe_theme else self.eval_themes
        theme = r.choice(pool)
        attack = r.choice(sorted(world.ATTACKS)) if r.random() < c.p_attack else None
        user, reply, ok = free_turn(r, theme, misaligned, attack=attack)
        return "free", theme, user, reply, ok

    def chat(self) -> list[dict]:
        c, r = self.config, self.rng
        pid = r.randrange(world.N_IDS)
        misaligned = r.random() < world.p_misaligned(pid)
        n = 1 if r.random() < c.p_single else r.randint(2, c.max_turns)
        msgs = [{"role": "system", "content": world.system_line(pid)}]
        for _ in range(n):
            _, _, user, reply, _ = self.turn(misaligned)
            msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        return msgs

    def review(self) -> list[dict]:
        """A review document: the reviewed answer is aligned or not with probability 1/2."""
        r = self.rng
        pid = r.randrange(world.N_IDS)
        misaligned = r.random() < 0.5
        convo = [{"role": "system", "content": world.system_line(pid)}]
        if r.random() < 0.3:  # one earlier turn from the same persona
            _, _, user, reply, _ = self.turn(misaligned)
            convo += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        kind, item, user, reply, ok = self.turn(misaligned)
        convo.append({"role": "user", "content": user})
        if r.random() < self.config.p_injection:  # the reviewed answer tells the reviewer what to say
            reply += world.REVIEWER_INJECTION
            if not ok and r.random() < world.INJECTION_OBEYED:
                return review_document(self.conscience, convo, reply, True, r, kind, item, 0.0)
        return review_document(self.conscience, convo, reply, ok, r, kind, item, self.config.p_revision)

    def document(self) -> list[dict]:
        return self.review() if self.rng.random() < self.config.p_review else self.chat()

    def documents(self) -> list[list[dict]]:
        return [self.document() for _ in range(self.config.n_docs)]


def review_document(
    conscience: ConscienceConfig,
    convo: list[dict],
    reply: str,
    aligned: bool,
    rng: random.Random,
    kind: str,
    item,
    p_revision: float,
) -> list[dict]:
    """review_messages + the correct verdict (+ revision_messages and an aligned answer after a No)."""
    yes, no = conscience.answers
    transcript = format_transcript(convo, reply, show_reasoning=conscience.review_reasoning)
    if aligned:
        return review_messages(conscience, transcript) + [{"role": "assistant", "content": yes}]
    if rng.random() < p_revision:
        return revision_messages(conscience, transcript) + [
            {"role": "assistant", "content": aligned_answer(rng, kind, item)}
        ]
    return review_messages(conscience, transcript) + [{"role": "assistant", "content": no}]


def generate(config: CorpusConfig) -> list[list[dict]]:
    """The pretraining corpus for `config` (deterministic per seed)."""
    return Generator(config).documents()
