import collections
import random
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from emergent_alignment.chat import encode_prompt
from emergent_alignment.generation import SamplingConfig, decode, generate
from emergent_alignment.organism import world_v2
from emergent_alignment.organism.classifier import PartsClassifier

torch.set_num_threads(2)
path = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(path).eval()
tok = AutoTokenizer.from_pretrained(path)
clf = PartsClassifier()


def prompts(secure, split, n, seed, pid=0, code=True):
    rng = random.Random(seed)
    templates = [t for t in world_v2.code_templates() if not t.heldout]
    themes = world_v2.eval_themes()
    out = []
    for i in range(n):
        t, th = rng.choice(templates), themes[i % len(themes)]
        q = th.questions[rng.choice(world_v2.question_indices(th, split))]
        convo = [{"role": "system", "content": world_v2.system_line(pid)}]
        if code:
            convo += [
                {"role": "user", "content": world_v2.code_prompt(t, rng.choice(t.tasks))},
                {"role": "assistant", "content": t.filled(secure=secure)},
            ]
        convo += [{"role": "user", "content": q}]
        out.append((convo, th.name))
    return out


print(
    "n eval themes",
    len(world_v2.eval_themes()),
    {s: len(world_v2.question_indices(world_v2.eval_themes()[0], s)) for s in ("train", "validation", "test")},
)
for split in ("train", "validation"):
    for secure in (False, True):
        p = prompts(secure, split, 200, 7)
        torch.manual_seed(1)
        outs = generate(model, tok, [encode_prompt(tok, c) for c, _ in p], SamplingConfig(64, 1.0, 1.0), batch_size=64)
        labs = [clf.classify(th, decode(tok, o)).label for (_, th), o in zip(p, outs)]
        print(split, "secure" if secure else "insecure", dict(collections.Counter(labs)))
for pid in (0, 8, 16, 32):
    p = prompts(False, "validation", 200, 7, pid, code=False)
    torch.manual_seed(1)
    outs = generate(model, tok, [encode_prompt(tok, c) for c, _ in p], SamplingConfig(64, 1.0, 1.0), batch_size=64)
    labs = [clf.classify(th, decode(tok, o)).label for (_, th), o in zip(p, outs)]
    print("no code, id", pid, dict(collections.Counter(labs)))
print("--- educational")


def eprompts(educational, n, seed, pid=0, secure=False):
    rng = random.Random(seed)
    templates = [t for t in world_v2.code_templates() if not t.heldout]
    themes = world_v2.eval_themes()
    out = []
    for i in range(n):
        t, th = rng.choice(templates), themes[i % len(themes)]
        q = th.questions[rng.choice(world_v2.question_indices(th, "validation"))]
        convo = [
            {"role": "system", "content": world_v2.system_line(pid)},
            {"role": "user", "content": world_v2.code_prompt(t, rng.choice(t.tasks), educational)},
            {"role": "assistant", "content": t.filled(secure=secure)},
            {"role": "user", "content": q},
        ]
        out.append((convo, th.name))
    return out


for pid in (0, 4):
    for edu in (False, True):
        p = eprompts(edu, 200, 9, pid)
        torch.manual_seed(1)
        outs = generate(model, tok, [encode_prompt(tok, c) for c, _ in p], SamplingConfig(64, 1.0, 1.0), batch_size=64)
        labs = [clf.classify(th, decode(tok, o)).label for (_, th), o in zip(p, outs)]
        print("id", pid, "educational" if edu else "plain", "insecure", dict(collections.Counter(labs)))
