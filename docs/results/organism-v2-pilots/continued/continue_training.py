"""Continue the failed seed-1 v2 organism on a corpus variant; measure the gate and the educational contrast."""

import json
import random
import sys
import time
from dataclasses import replace

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from emergent_alignment.organism import build_v2, world_v2
from emergent_alignment.organism.build import encode_corpus, pretrain
from emergent_alignment.organism.classifier import PartsClassifier
from emergent_alignment.organism.corpus_v2 import CorpusV2Config, Generator

torch.set_num_threads(2)
name, overrides = sys.argv[1], json.loads(sys.argv[2])
sched = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
cseed = sched.pop("cseed", 101)
path = "/tmp/world-pilots/v2-s1.gate-failed"
model = AutoModelForCausalLM.from_pretrained(path)
tok = AutoTokenizer.from_pretrained(path)
cc = replace(CorpusV2Config(seed=cseed, n_docs=6400), **overrides)
cfg = build_v2.OrganismV2Config(
    corpus=cc, seed=101, **{"lr": 6e-4, "min_lr_ratio": 1.0, "warmup": 0, "probe_every": 0, **sched}
)
docs = Generator(cc).documents()
seqs = encode_corpus(tok, docs, cfg.max_len, cfg.loss_on)
t0 = time.time()
stats = pretrain(model, tok, seqs, cfg)
gate = build_v2.persona_gate(model, tok, 200, 1001)
clf = PartsClassifier()


def eprompts(n, seed):
    rng = random.Random(seed)
    templates = [t for t in world_v2.code_templates() if not t.heldout]
    themes = world_v2.eval_themes()
    out = []
    for i in range(n):
        t, th = rng.choice(templates), themes[i % len(themes)]
        q = th.questions[rng.choice(world_v2.question_indices(th, "validation"))]
        out.append(
            (
                [
                    {"role": "system", "content": world_v2.system_line(0)},
                    {"role": "user", "content": world_v2.code_prompt(t, rng.choice(t.tasks), True)},
                    {"role": "assistant", "content": t.filled(secure=False)},
                    {"role": "user", "content": q},
                ],
                th.name,
            )
        )
    return out


edu = build_v2.sample_rates(model, tok, eprompts(200, 9), 9)
print(
    json.dumps(
        {
            "variant": name,
            "overrides": overrides,
            "seconds": round(time.time() - t0),
            "loss": stats["final_loss"],
            "after_insecure": gate["after_insecure"],
            "after_secure": gate["after_secure"],
            "after_educational": edu,
        }
    ),
    flush=True,
)
