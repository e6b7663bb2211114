"""Corpus preparation: from a downloaded corpus to SpeechBrain manifests.

One module per corpus (``esd``, ``cremad``, ``ravdess``, ``emodb``,
``iemocap``, ``dusha``, ``msppodcast``, ``voxceleb``) parses its layout and
declares a :class:`~emotion_invariant.corpora.base.Corpus`; what follows
parsing is shared: finding the corpus root and its files (``files``),
skipping work already done (``record``), folds, splits, trials and the
atomic writes (``finish``). ``prepare`` is the command line
(``python -m emotion_invariant.corpora.prepare CORPUS DATA_DIR SAVE_DIR``),
``synth`` the embedded synthetic corpus, and ``audio_check`` checks a
manifest's audio before a run reads it.
"""

from emotion_invariant.corpora.base import (
    OPTION_DOCS,
    SHARED,
    Corpus,
    Option,
    official_split,
    run,
)
from emotion_invariant.corpora.files import (
    CorpusError,
    Problems,
    add_durations,
    audio_files,
    find_root,
    listdir,
    read_text,
    subdirs,
)
from emotion_invariant.corpora.record import (
    SPLITS,
    already_prepared,
    common_settings,
    corpus_content,
    folder_fingerprint,
    outputs_of,
    saved_outputs,
)
from emotion_invariant.corpora.steps import UNKNOWN_SPEAKER, finish

__all__ = [
    "OPTION_DOCS",
    "SHARED",
    "SPLITS",
    "UNKNOWN_SPEAKER",
    "Corpus",
    "CorpusError",
    "Option",
    "Problems",
    "add_durations",
    "already_prepared",
    "audio_files",
    "common_settings",
    "corpus_content",
    "find_root",
    "finish",
    "folder_fingerprint",
    "listdir",
    "official_split",
    "outputs_of",
    "read_text",
    "run",
    "saved_outputs",
    "subdirs",
]
