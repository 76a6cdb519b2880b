"""Throughput of the organism's pretraining step (tokens/s), variants vs. the shipped config.

Building the organism is most of `make demo` from an empty cache (2,250 pretraining steps). This
benchmark asks which changes would make a pretraining step cheaper on a CPU: each variant runs the
build's own `pretrain` on a fresh model and the same corpus documents as the baseline (the shipped
`OrganismConfig`), in the same process, and the ratio of tokens per second is printed. A variant that changes the numbers
(bf16, another size, another batch) also gives another organism, which must pass its gate and be
validated again (docs/organism.md, "What was tried"); the ratio only says what it would save.

- `bf16`: `torch.autocast("cpu", bfloat16)` around the forward (AMX/AVX-512-BF16 where present);
- `batch 32`: 32 documents per step instead of 16 (same tokens per second is no gain);
- `hidden 128`, `3 layers`: smaller models (the build at hidden 128 was tried: its gate failed);
- `compile` (`--compile`): `torch.compile(dynamic=True)`; its compile time is reported apart.

    python benchmarks/bench_pretraining.py [--steps 30] [--threads 0] [--compile]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses

import _common as C
import torch


def corpus(config, n_docs: int):
    """The tokenizer and `n_docs` encoded documents of the organism's corpus."""
    from emergent_alignment.organism.build import encode_corpus, make_tokenizer
    from emergent_alignment.organism.corpus import generate

    tok = make_tokenizer()
    docs = generate(dataclasses.replace(config.corpus, n_docs=n_docs))
    return tok, encode_corpus(tok, docs, config.max_len, config.loss_on)


def tokens_per_s(config, tok, seqs, steps: int, bf16=False, compile=False, warmup=3) -> tuple[float, float]:
    """(tokens/s, seconds of the warm-up): the build's own `pretrain` on a fresh model of `config`,
    `warmup` steps first, then `steps` timed steps (persona probes off)."""
    from emergent_alignment.organism.build import make_model, pretrain

    config = dataclasses.replace(config, probe_every=0)
    model = make_model(config, tok)
    model = torch.compile(model, dynamic=True) if compile else model
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    n_warm = warmup * config.batch_size
    with autocast:
        warm = pretrain(model, tok, seqs[:n_warm], config)["seconds"]
        timed = pretrain(model, tok, seqs[n_warm : n_warm + steps * config.batch_size], config)
    return timed["tokens_per_s"], warm


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant (after 3 warm-up steps)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, as the build)")
    a = ap.parse_args()
    if a.steps < 1:
        ap.error(f"--steps must be >= 1, got {a.steps}")
    C.setup(a.threads)
    from emergent_alignment.organism.build import OrganismConfig

    base = OrganismConfig()
    tok, seqs = corpus(base, 32 * (a.steps + 3))
    variants = [
        ("bf16 autocast", base, dict(bf16=True)),
        ("batch 32", dataclasses.replace(base, batch_size=32), {}),
        ("hidden 128", dataclasses.replace(base, hidden=128), {}),
        ("3 layers", dataclasses.replace(base, layers=3), {}),
    ]
    if a.compile:
        variants.append(("torch.compile", base, dict(compile=True)))
    print(
        f"organism pretraining step: {C.environment()}; shipped config hidden {base.hidden}, "
        f"{base.layers} layers, batch {base.batch_size}; {a.steps} timed steps per variant"
    )
    baseline, _ = tokens_per_s(base, tok, seqs, a.steps)
    print(f"  baseline (fp32)         {baseline:8.0f} tokens/s")
    for name, config, kw in variants:
        rate, warm = tokens_per_s(config, tok, seqs, a.steps, **kw)
        extra = f"  (first 3 steps {warm:.1f} s)" if kw.get("compile") else ""
        print(f"  {name:<22}  {rate:8.0f} tokens/s  {rate / baseline:5.2f}x the baseline{extra}")


if __name__ == "__main__":
    main()
