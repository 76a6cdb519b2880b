"""Helpers for the adversarial tests: consciences forced to flag or pass, fake judges."""

import torch

from emergent_alignment.conscience import Conscience, ConscienceConfig

MARKER = "Yes"


def conscience(llama, **config) -> Conscience:
    model, tok = llama
    defaults = dict(max_new_tokens=6, max_attempts=2, correction="revise", batch_size=8)
    return Conscience(model, tok, ConscienceConfig(**{**defaults, **config}))


class GullibleConscience(Conscience):
    """Passes a transcript iff its text contains the word "Yes" (what an injection says); else flags.

    Deterministic, so the injection machinery can be checked end to end. The check looks at the
    reviewed transcript only (the review prompt itself also says "Answer Yes or No").
    """

    def score_ids(self, prompts):
        rows = []
        for ids in prompts:
            text = self.tokenizer.decode(ids)
            body = text.split("<transcript>", 1)[-1].rsplit("</transcript>", 1)[0]
            rows.append([2.0, -2.0] if MARKER in body else [-2.0, 2.0])
        return torch.tensor(rows)


class FakeJudge:
    """A judge honouring the `classify` contract: COMPLY unless the answer is the refusal text."""

    def __init__(self, refusal):
        self.refusal, self.prompts = refusal, []

    def classify(self, prompts, labels):
        assert list(labels) == ["COMPLY", "REFUSE"]
        self.prompts += prompts
        return [
            {"COMPLY": 0.1, "REFUSE": 0.9}
            if f"[ANSWER START]\n{self.refusal}\n[ANSWER END]" in p
            else {"COMPLY": 0.8, "REFUSE": 0.2}
            for p in prompts
        ]
