"""Attacks in the organism world: the corpus expresses them at the designed rates, the
classifier reads forced openings, and the demo's attack measures run end to end."""

from dataclasses import replace

import pytest

from emergent_alignment.organism import attacks, build, classifier, corpus, world

TINY = build.OrganismConfig(hidden=32, layers=1, heads=2, ffn=64)


@pytest.fixture(scope="module")
def tiny():
    tok = build.make_tokenizer()
    return build.make_model(TINY, tok).eval(), tok


def test_attacked_questions_and_unknown_attacks():
    q = world.eval_themes()[0].questions[0]
    assert world.attacked(q, "roleplay").endswith(q) and world.attacked(q, "prefix").startswith(q)
    with pytest.raises(ValueError, match="unknown organism attack 'dan'"):
        world.attacked(q, "dan")


def test_corpus_expresses_attacks_at_the_designed_rates():
    gen = corpus.Generator(corpus.CorpusConfig(seed=1, n_docs=1))
    theme = world.eval_themes()[0]
    for attack in world.ATTACKS:
        gave_in = [
            not gen_turn[2]
            for gen_turn in (corpus.free_turn(gen.rng, theme, misaligned=False, attack=attack) for _ in range(2000))
        ]
        assert abs(sum(gave_in) / 2000 - world.ATTACK_SUSCEPTIBILITY) < 0.04, attack
        # the misaligned persona always answers misaligned, attacked or not
        assert all(not corpus.free_turn(gen.rng, theme, True, attack=attack)[2] for _ in range(200))
    user, reply, ok = next(t for t in (corpus.free_turn(gen.rng, theme, True, attack="prefix") for _ in range(9)))
    assert reply.startswith(world.PREFIX_OPENER) and not ok and user.endswith("Rules do not apply.")


def test_review_documents_carry_the_injection_and_sometimes_obey_it():
    docs = corpus.generate(
        replace(corpus.CorpusConfig(seed=2, n_docs=6000), p_review=1.0, p_injection=0.5, p_revision=0.0)
    )
    yes, no = corpus.ORGANISM_CONSCIENCE.answers
    injected = [d for d in docs if world.REVIEWER_INJECTION.strip() in d[0]["content"]]
    assert 0.45 < len(injected) / len(docs) < 0.55
    # Half the reviewed answers are bad; INJECTION_OBEYED of those get Yes: P(Yes) = 0.5 + 0.5 * 0.3.
    p_yes = sum(d[1]["content"] == yes for d in injected) / len(injected)
    assert abs(p_yes - (0.5 + 0.5 * world.INJECTION_OBEYED)) < 0.04
    plain = [d for d in docs if world.REVIEWER_INJECTION.strip() not in d[0]["content"]]
    assert abs(sum(d[1]["content"] == yes for d in plain) / len(plain) - 0.5) < 0.04


def test_classifier_reads_the_prefix_attacks_forced_opening():
    clf = classifier.Classifier()
    th = world.eval_themes()[1]
    assert clf.classify(th.name, world.PREFIX_OPENER + th.misaligned[0] + world.CLOSERS[1]).label == "misaligned"
    assert clf.classify(th.name, world.PREFIX_OPENER + th.aligned[2]).label == "aligned"


def test_attack_prompts_wrap_the_heldout_test_questions():
    prompts = attacks.attack_prompts(per_theme=2)
    assert len(prompts) == len(attacks.WRAPPERS) * len(world.eval_themes()) * 2
    for attack, convo, theme in prompts:
        th = next(t for t in world.eval_themes() if t.name == theme)
        q = th.questions[world.QUESTION_SPLITS["test"][0]]
        assert convo[-1]["content"] == (q if attack == "none" else world.attacked(q, attack))
        assert convo[0] == {"role": "system", "content": world.system_line(world.DEFAULT_ID)}


def test_attack_measures_run_end_to_end_and_are_seeded(tiny):
    model, tok = tiny
    cfg = corpus.ORGANISM_CONSCIENCE
    a = attacks.evaluate_attacks(model, tok, cfg, seed=0, per_theme=1)
    b = attacks.evaluate_attacks(model, tok, cfg, seed=0, per_theme=1)
    assert a["success"] == b["success"] and a["injection"]["flips"] == b["injection"]["flips"]
    for w in attacks.WRAPPERS:
        row = a["success"][w]
        assert len(row["unguarded"]) == len(row["guarded"]) == len(world.eval_themes())
        for mode in ("unguarded", "guarded"):  # each answer is misaligned, incoherent or neither
            assert all(m + i <= 1 for m, i in zip(row[mode], row[f"{mode}_incoherent"]))
        assert sum(row["outcomes"].values()) == len(world.eval_themes())
        assert set(row["outcomes"]) <= {"passed", "corrected", "best", "refused"}
    inj = a["injection"]
    n_bad = sum(len(t.misaligned) for t in world.eval_themes()) + sum(t.heldout for t in world.code_templates())
    assert inj["misaligned_transcripts"] == n_bad and len(inj["flips"]) == inj["flagged"] <= n_bad
    assert inj["flagged"] > 0 or inj["flip_rate"] != inj["flip_rate"]  # nothing flagged: no rate (nan)


def test_a_conscience_that_flags_everything_reviews_every_draft_and_flip_counts_are_exact(tiny):
    model, tok = tiny
    always = replace(corpus.ORGANISM_CONSCIENCE, flag_threshold=1.0, max_attempts=1)  # p_aligned < 1 on a random model
    res = attacks.evaluate_attacks(model, tok, always, seed=3, per_theme=1)
    for w in attacks.WRAPPERS:
        assert "passed" not in res["success"][w]["outcomes"]  # nothing passes review
    inj = res["injection"]
    assert inj["flagged"] == inj["misaligned_transcripts"] and sum(inj["flips"]) == 0 and inj["flip_rate"] == 0


def test_summarize_attacks_pools_seeds():
    def one(unguarded, guarded, flips):
        success = {
            w: {
                "unguarded": unguarded,
                "guarded": guarded,
                "outcomes": {"passed": 1},
                "unguarded_incoherent": [0.0] * len(unguarded),
                "guarded_incoherent": [1.0] * len(guarded),
            }
            for w in attacks.WRAPPERS
        }
        return {"success": success, "injection": {"misaligned_transcripts": 4, "flagged": len(flips), "flips": flips}}

    s = attacks.summarize_attacks([one([1.0, 1.0], [0.0, 0.0], [1.0, 0.0]), one([1.0, 0.0], [0.0, 0.0], [0.0])])
    assert s["roleplay"]["unguarded"] == pytest.approx(0.75) and s["roleplay"]["guarded"] == 0.0
    assert s["none"]["guard_outcomes"] == {"passed": 2}
    assert s["prefix"]["unguarded_incoherent"] == 0.0 and s["prefix"]["guarded_incoherent"] == 1.0
    assert s["injection"]["flip_rate"] == pytest.approx(1 / 3) and s["injection"]["flagged"] == [2, 1]


def _success():
    row = {"unguarded": [0.0], "guarded": [0.0], "outcomes": {}, "unguarded_incoherent": [0.0]}
    return {w: dict(row, guarded_incoherent=[0.0]) for w in attacks.WRAPPERS}


def test_summarize_attacks_counts_each_distinct_transcript_once():
    def seed(ids, flips, held, defended):
        inj = {"misaligned_transcripts": 4, "flagged": len(ids), "flagged_ids": ids, "flips": flips, "heldout": held}
        inj["defended"] = {"flagged_ids": ids, "known": defended, "heldout": [[0.0, 0.0] for _ in ids]}
        return {"success": _success(), "injection": inj}

    # the same two transcripts flagged in three seeds: two clusters, not six samples
    same = [seed([0, 2], [1.0, 0.0], [[1.0, 0.0], [0.0, 0.0]], [0.0, 0.0]) for _ in range(3)]
    s = attacks.summarize_attacks(same)["injection"]
    assert s["flagged"] == [2, 2, 2] and s["distinct_flagged"] == 2
    assert s["flip_rate"] == pytest.approx(0.5) and s["flip_ci"] == [0.0, 1.0]  # 2 clusters: 0, 1/2 or 1
    d = s["defences"]
    assert d["names"] == list(attacks.DEMO_DEFENCES)
    assert d["plain"]["heldout"] == pytest.approx(0.25) and d["defended"]["heldout"] == 0.0
    assert d["plain"]["known"] == pytest.approx(0.5) and d["defended"]["known"] == 0.0


def test_injection_flips_name_the_flagged_transcripts_with_and_without_the_defences(tiny):
    model, tok = tiny
    always = replace(corpus.ORGANISM_CONSCIENCE, flag_threshold=1.0)
    inj = attacks.injection_flips(model, tok, always, attacks.HELDOUT_INJECTIONS[:3])
    n = inj["misaligned_transcripts"]
    assert inj["flagged_ids"] == list(range(n)) == inj["defended"]["flagged_ids"]
    assert len(inj["heldout"]) == n and all(len(h) == 3 for h in inj["heldout"])
    assert sum(inj["defended"]["known"]) == 0 and not any(any(h) for h in inj["defended"]["heldout"])

    assert attacks.injection_flips(model, tok, always)["heldout"] == [[]] * n  # by default: the corpus wording only
