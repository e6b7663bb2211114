"""Shared fixtures: a tiny synthesized corpus, made once per test session."""

import socket

import pytest

from emotion_invariant.corpora.synth import synthesize_corpus

TINY = {"speakers": 6, "utterances": 3, "seed": 7}


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A 6-speaker, 4-emotion, 3-sentence synthetic corpus (72 files)."""
    out = tmp_path_factory.mktemp("tiny_corpus")
    synthesize_corpus(str(out), jobs=2, **TINY)
    return out


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
