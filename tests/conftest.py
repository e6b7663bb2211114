"""Shared fixtures: a tiny synthesized corpus, made once per test session."""

import pytest

from emotion_invariant.data.synth import synthesize_corpus

TINY = {"speakers": 6, "utterances": 3, "seed": 7}


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A 6-speaker, 4-emotion, 3-sentence synthetic corpus (72 files)."""
    out = tmp_path_factory.mktemp("tiny_corpus")
    synthesize_corpus(str(out), jobs=2, **TINY)
    return out
