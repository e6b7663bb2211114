"""Shared fixtures: a tiny synthesized corpus, made once per test session."""

import logging
import socket
import sys

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


@pytest.fixture(autouse=True)
def log_handlers_on_open_streams():
    """Each test starts with no log handler writing to a closed stream.

    A recipe run inside a test sets up SpeechBrain's stream handler on that
    test's captured stderr, which pytest closes afterwards; a later test's
    log record would then print a ``--- Logging error ---`` traceback into
    its own stderr, and a test that checks the stderr of a command for
    tracebacks would fail for another test's sake. Such handlers are pointed
    at the current stderr.
    """
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if (
                type(handler) is not logging.FileHandler
                and isinstance(handler, logging.StreamHandler)
                and getattr(handler.stream, "closed", False)
            ):
                # setStream would flush the closed stream first.
                with handler.lock:
                    handler.stream = sys.stderr
    yield
