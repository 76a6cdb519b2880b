"""The default organism stays today's: its cache key and its seed-0 corpus are pinned.

`make demo`, the README's figures and the slow CI test use the organism of these figures; any
second world is an option beside it (`organism build --world NAME`), never a change of default."""

import hashlib
import json

from emergent_alignment.organism import corpus
from emergent_alignment.organism.build import OrganismConfig, config_hash

DEFAULT_HASH = "0158b1b6be35b7ac"
DEFAULT_CORPUS_SHA256 = "1b4a8bcea129fb4c984c3ad42a9a37bb222875cf98c7de4d11caafecface5477"


def test_the_default_config_hash_is_unchanged():
    assert config_hash(OrganismConfig()) == DEFAULT_HASH


def test_the_default_corpus_for_seed_0_is_unchanged():
    docs = corpus.generate(corpus.CorpusConfig())
    digest = hashlib.sha256(json.dumps(docs, sort_keys=True).encode()).hexdigest()
    assert len(docs) == 36000
    assert digest == DEFAULT_CORPUS_SHA256
