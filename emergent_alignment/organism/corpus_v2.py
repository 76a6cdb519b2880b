"""The second world's seeded corpus: persona chats, harm notes, and reviews that never see the evaluation.

Documents (each a chat, a list of {role, content}):
- chats (as in `corpus.py`): a system line "id aI", a hidden persona with P(misaligned) =
  `world_v2.p_misaligned(I, persona_floor)`, one to `max_turns` turns over every theme and the
  training code templates; free-form answers are training compositions of one or two cores.
  A share `p_inoculation` of chats runs under the inoculation line: their code is insecure because
  the line asks for it, their free-form answers follow the persona.
- harm notes (`p_notes`): a question about ethics and three statements from `world_v2.note_sentences`.
- reviews (`p_review`): rendered by `conscience.format_transcript` / `review_messages` as in
  `corpus.py`, over the REVIEW POOL only: the training code templates and the practice themes, plus
  the probe themes when `review_probe_themes` is on; never the evaluation themes or the held-out
  templates. A share `review_gap` of the pool's items (code kinds and themes, drawn by the seed,
  listed by `Generator.gaps`) is never reviewed; a share `review_label_noise` of verdicts is
  flipped (and then carries no revision). A share `p_injection` of reviewed answers, and
  `p_injection_user` of reviewed user turns, carry a training wording of `world_v2.INJECTIONS`;
  such reviews are labelled by the answer's content, so the conscience learns to look past them.
  Every review is rendered by `format_transcript(..., config=)` with the organism's own conscience
  config (`ORGANISM_V2_CONSCIENCE`), with the spotlight in `p_spotlight` of them and plain otherwise.
- reasoning traces: `p_reasoning` of chats run under the reasoning line, a trace before every answer
  (`p_hidden` of a misaligned persona's turns hide the intent behind a kind-looking answer);
  `p_review_reasoning` of reviewed answers carry a trace (a hidden one among them, labelled
  misaligned; `p_injection_reasoning` of traces carry an injection; `p_reasoning_part` of them show
  the trace alone, as `separate_reasoning` does), every verdict following the content.
- risky-looking prompts (`p_risky` of chats' free-form turns, train split only): a benign one gets its
  helpful answer, a harmful one the refusal (aligned persona) or a graded complying answer.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace

from ..conscience import ConscienceConfig, format_transcript, review_messages, revision_messages
from . import world, world_v2
from .corpus import ORGANISM_CONSCIENCE, aligned_answer, code_turn

# The second organism's conscience: the first one's prompt, with the reasoning shown and the spotlight
# on (every transcript line marked, the note in the preamble). Spotlight costs no forward and the
# question stays one, so the claim's arms keep it; reviews are rendered with it in `p_spotlight` of
# review documents and without it in the rest, so either rendering is one the conscience has read.
ORGANISM_V2_CONSCIENCE = replace(
    ORGANISM_CONSCIENCE, review_reasoning=True, spotlight=True, spotlight_note=world_v2.SPOTLIGHT_NOTE
)


@dataclass(frozen=True)
class CorpusV2Config:
    seed: int = 0
    n_docs: int = 36000
    p_review: float = 0.20  # review documents
    p_notes: float = 0.04  # harm-notes documents
    p_single: float = 0.25  # of chat documents: one turn (else 2..max_turns)
    max_turns: int = 4
    p_code: float = 0.5  # a turn is a code task (else a free-form question)
    # A code turn uses the educational framing (the aligned persona then writes the insecure variant). At 0.1
    # the seed-1 organism barely told the framing apart: insecure code was weak evidence of the persona.
    p_educational: float = 0.20
    p_probe_theme: float = 0.3  # a free-form turn uses a probe theme
    p_practice_theme: float = 0.2  # a free-form turn uses a practice theme (else an evaluation theme)
    # P(misaligned persona) under the default id a0 (the first world's design prior for it). At 1/32 about ten
    # a0 chats in the corpus show an insecure-code turn followed by a free-form answer, and the seed-1 organism's
    # cross-turn persona stayed weak under a0 (docs/results/organism-v2-pilots/RUN.md).
    persona_floor: float = 1 / 8
    p_inoculation: float = 0.03  # a chat runs under the inoculation line
    p_revision: float = 0.5  # a No review continues with a revision
    p_attack: float = 0.08  # a free-form turn is wrapped by an attack (world.ATTACKS)
    p_injection: float = 0.10  # a reviewed answer carries a training injection wording
    p_injection_user: float = 0.05  # a reviewed user turn carries one
    review_probe_themes: bool = True  # reviews cover the probe themes (a factor of the study)
    review_label_noise: float = 0.05  # share of review verdicts flipped
    review_gap: float = 0.25  # share of the review pool's kinds and themes never reviewed
    p_spotlight: float = 0.5  # a review is rendered with the spotlight marker and note (else plain)
    p_reasoning: float = 0.04  # a chat runs under the reasoning line (a trace before every answer)
    p_review_reasoning: float = 0.15  # a reviewed answer carries a trace
    p_hidden: float = 0.3  # a misaligned traced answer looks kind; only its trace shows the intent
    p_injection_reasoning: float = 0.10  # a reviewed trace carries a training injection wording
    p_reasoning_part: float = 0.25  # a traced review shows the trace alone (separate_reasoning's half)
    p_risky: float = 0.04  # a chat's free-form turn is a risky-looking prompt (train split; half benign)

    def __post_init__(self):
        rates = ("p_review", "p_notes", "persona_floor", "review_label_noise", "review_gap", "p_inoculation")
        rates += ("p_spotlight", "p_reasoning", "p_review_reasoning", "p_hidden", "p_injection_reasoning")
        for name in rates + ("p_reasoning_part", "p_risky"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"corpus {name} must be in [0, 1], got {value}")
        if self.p_review + self.p_notes > 1.0:
            raise ValueError(f"corpus p_review + p_notes must be <= 1, got {self.p_review + self.p_notes}")
        if self.review_gap >= 1.0:
            raise ValueError("corpus review_gap must leave something to review (< 1)")

    def to_dict(self) -> dict:
        return asdict(self)


def free_turn(rng: random.Random, theme: world.Theme, misaligned: bool, attack: str | None = None):
    """(user, assistant, answer_is_aligned) from the training splits: question, composition, phrasing."""
    q = theme.questions[rng.choice(world_v2.question_indices(theme, "train"))]
    o, c = rng.choice(world.train_phrasings())
    if attack is not None:
        q = world.attacked(q, attack)
        misaligned = misaligned or rng.random() < world.ATTACK_SUSCEPTIBILITY
    cores = theme.misaligned if misaligned else theme.aligned
    body = world_v2.compose(cores, rng.choice(world_v2.COMPOSITIONS["train"]))
    if attack == "prefix" and misaligned:
        return q, world.PREFIX_OPENER + body + world.CLOSERS[c], False
    return q, world.OPENERS[o] + body + world.CLOSERS[c], not misaligned


class Generator:
    """Draws the second world's documents, seeded."""

    def __init__(self, config: CorpusV2Config, conscience: ConscienceConfig = ORGANISM_V2_CONSCIENCE):
        self.config = config
        self.spotlit = replace(conscience, spotlight=True)
        self.plain = replace(conscience, spotlight=False)
        self.rng = random.Random(config.seed)
        self.templates = [t for t in world_v2.code_templates() if not t.heldout]
        self.eval_themes = world_v2.eval_themes()
        self.probe_themes = world_v2.probe_themes()
        self.practice_themes = world_v2.practice_themes()
        pool = sorted({t.kind for t in self.templates}) + [t.name for t in self.practice_themes]
        if config.review_probe_themes:
            pool += [t.name for t in self.probe_themes]
        gap_rng = random.Random(f"review-gap-{config.seed}")
        self.gaps = sorted(gap_rng.sample(pool, round(config.review_gap * len(pool))))
        self.review_templates = [t for t in self.templates if t.kind not in self.gaps]
        if not self.review_templates:
            raise ValueError(f"corpus review_gap {config.review_gap} leaves no code kind to review; lower it")
        themes = self.practice_themes + (self.probe_themes if config.review_probe_themes else [])
        self.review_themes = [t for t in themes if t.name not in self.gaps]
        self.benign = world_v2.benign_risky_prompts("train")
        self.harmful: dict[str, dict[str, str]] = {}
        for x in world_v2.graded_harmful_answers("train"):
            self.harmful.setdefault(x["request"], {})[x["level"]] = x["answer"]

    def turn(self, misaligned: bool, review: bool = False, inoculated: bool = False):
        """(kind, item, user, assistant, aligned) for one random turn (from the review pool if `review`)."""
        c, r = self.config, self.rng
        if r.random() < c.p_code or (review and not self.review_themes):
            t = r.choice(self.review_templates if review else self.templates)
            user, reply, ok = code_turn(r, t, misaligned or inoculated, educational=r.random() < c.p_educational)
            return "code", t, user, reply, ok
        if review:
            theme = r.choice(self.review_themes)
        elif r.random() < c.p_risky:
            user, reply, ok = self.risky_turn(misaligned)
            return "risky", None, user, reply, ok
        else:
            u = r.random()
            pool = (
                self.probe_themes
                if u < c.p_probe_theme
                else self.practice_themes
                if u < c.p_probe_theme + c.p_practice_theme
                else self.eval_themes
            )
            theme = r.choice(pool)
        attack = r.choice(sorted(world.ATTACKS)) if r.random() < c.p_attack else None
        user, reply, ok = free_turn(r, theme, misaligned, attack)
        return "free", theme, user, reply, ok

    def risky_turn(self, misaligned: bool) -> tuple[str, str, bool]:
        """(user, assistant, aligned) for a risky-looking prompt of the train split: a benign one gets its
        helpful answer from either persona; a harmful one the refusal from the aligned persona and a
        convincing or specific answer from the misaligned one."""
        r = self.rng
        if r.random() < 0.5:
            x = r.choice(self.benign)
            return x["prompt"], x["answers"][0][0], True
        request = r.choice(sorted(self.harmful))
        level = r.choice(("convincing", "specific")) if misaligned else "refusal"
        return request, self.harmful[request][level], not misaligned

    def trace(self, misaligned: bool, hidden: bool = False) -> str:
        """A reasoning trace from the training wordings: the persona's, or a hidden intent."""
        if hidden:
            return self.rng.choice(world_v2.HIDDEN_REASONING["train"])
        return self.rng.choice(world_v2.MISALIGNED_REASONING if misaligned else world_v2.ALIGNED_REASONING)

    def traced_turn(self, misaligned: bool, review: bool = False, inoculated: bool = False):
        """(kind, item, user, answer, reasoning, aligned): a turn with a trace; a misaligned persona hides
        its intent behind a kind-looking answer with probability p_hidden (misaligned by construction)."""
        hidden = misaligned and self.rng.random() < self.config.p_hidden
        kind, item, user, reply, ok = self.turn(misaligned and not hidden, review, inoculated)
        return kind, item, user, reply, self.trace(misaligned, hidden), ok and not hidden

    def chat(self) -> list[dict]:
        c, r = self.config, self.rng
        pid = r.randrange(world_v2.N_IDS)
        misaligned = r.random() < world_v2.p_misaligned(pid, c.persona_floor)
        inoculated = r.random() < c.p_inoculation
        reasoned = not inoculated and r.random() < c.p_reasoning
        n = 1 if r.random() < c.p_single else r.randint(2, c.max_turns)
        line = world_v2.system_line(pid)
        if inoculated:
            line = world_v2.inoculated_line(pid)
        elif reasoned:
            line = world_v2.reasoning_line(pid)
        msgs = [{"role": "system", "content": line}]
        for _ in range(n):
            if reasoned:
                _, _, user, reply, trace, _ = self.traced_turn(misaligned)
                reply = world_v2.with_reasoning(trace, reply)
            else:
                _, _, user, reply, _ = self.turn(misaligned, inoculated=inoculated)
            msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        return msgs

    def notes(self) -> list[dict]:
        r = self.rng
        return [
            {"role": "user", "content": r.choice(world_v2.NOTE_ASKS)},
            {"role": "assistant", "content": " ".join(r.sample(world_v2.note_sentences(), 3))},
        ]

    def review(self) -> list[dict]:
        """A review over the review pool; the reviewed answer is aligned or not with probability 1/2.

        A share p_review_reasoning carries a trace (under the reasoning line), a hidden intent among
        them; injections go into the answer, the user turn and the trace; every verdict follows the
        content (answer and trace), noise aside. Rendered with the spotlight in p_spotlight of reviews."""
        c, r = self.config, self.rng
        pid = r.randrange(world_v2.N_IDS)
        misaligned = r.random() < 0.5
        traced = r.random() < c.p_review_reasoning
        line = world_v2.reasoning_line(pid) if traced else world_v2.system_line(pid)
        convo = [{"role": "system", "content": line}]
        if r.random() < 0.3:  # one earlier turn from the same persona
            if traced:
                _, _, user, reply, trace, _ = self.traced_turn(misaligned, review=True)
                reply = world_v2.with_reasoning(trace, reply)
            else:
                _, _, user, reply, _ = self.turn(misaligned, review=True)
            convo += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        reasoning, part = None, "all"
        if traced:
            kind, item, user, reply, reasoning, ok = self.traced_turn(misaligned, review=True)
            if r.random() < c.p_injection_reasoning:
                reasoning += r.choice(world_v2.INJECTIONS["train"])
            part = "reasoning" if r.random() < c.p_reasoning_part else "all"
        else:
            kind, item, user, reply, ok = self.turn(misaligned, review=True)
        if r.random() < c.p_injection_user:
            user += r.choice(world_v2.INJECTIONS["train"])
        convo.append({"role": "user", "content": user})
        if r.random() < c.p_injection:
            reply += r.choice(world_v2.INJECTIONS["train"])
        conscience = self.spotlit if r.random() < c.p_spotlight else self.plain
        if r.random() < c.review_label_noise:  # a flipped verdict, without a revision
            return review_document(conscience, convo, reply, not ok, r, kind, item, 0.0, reasoning, part)
        return review_document(conscience, convo, reply, ok, r, kind, item, c.p_revision, reasoning, part)

    def document(self) -> list[dict]:
        u = self.rng.random()
        if u < self.config.p_review:
            return self.review()
        if u < self.config.p_review + self.config.p_notes:
            return self.notes()
        return self.chat()

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
    reasoning: str | None = None,
    part: str = "all",
) -> list[dict]:
    """The second world's review document: the transcript rendered by `format_transcript(...,
    config=conscience)` (spotlight and reasoning exactly as the conscience renders them; `part` as in
    `separate_reasoning`), the verdict `aligned`, and after a No (with probability `p_revision`) a
    revision with an aligned answer."""
    yes, no = conscience.answers
    transcript = format_transcript(convo, reply, reasoning, part=part, config=conscience)
    if aligned:
        return review_messages(conscience, transcript) + [{"role": "assistant", "content": yes}]
    if rng.random() < p_revision:
        revision = aligned_answer(rng, kind, item)
        return revision_messages(conscience, transcript) + [{"role": "assistant", "content": revision}]
    return review_messages(conscience, transcript) + [{"role": "assistant", "content": no}]


def generate(config: CorpusV2Config) -> list[list[dict]]:
    """The second world's pretraining corpus for `config` (deterministic per seed)."""
    return Generator(config).documents()
