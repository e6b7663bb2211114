"""Is this the same speaker? Cosine scores of wav pairs with a model folder.

Works on a speaker model folder written by ``python -m
emotion_invariant.models.export`` (which stores the cosine threshold at the
dev speakers' EER in its ``hyperparams.yaml``), on SpeechBrain's
published ``spkrec-ecapa-voxceleb`` layout (no stored threshold: pass
``--threshold``) and on either with a back-end built in (``python -m
emotion_invariant.backend fit --model``: scored in the back-end's space, no
stored threshold); an exported emotion model is refused. Offline: the
folder's ``hyperparams.yaml`` builds the modules, and the parameter files
are read from the folder itself, whatever its ``pretrained_path`` says.

Usage::

    python -m emotion_invariant.verification.verify ENROL.wav TEST.wav \\
        --model FOLDER
    python -m emotion_invariant.verification.verify --pairs PAIRS.txt \\
        --model FOLDER

A pairs file holds one pair a line, ``ENROL TEST``, or SpeechBrain's trial
format ``LABEL ENROL TEST`` (the label, 0 or 1, is ignored). The fields are
separated by tabs on a line that holds a tab, else by spaces: a file name
with a space needs tabs (a line of three space-separated fields whose first
is no label is refused, not read as a label). A line whose first non-blank
character is ``#`` is a comment; elsewhere ``#`` is part of a name. Blank
lines are skipped; relative paths are relative to the file's folder.

Every file is checked before the model runs: a missing or unreadable one,
or one shorter than the model's minimum (ECAPA-TDNN: 40 ms), is an error
naming it; a silent one (peak below -80 dBFS) is scored with a warning.
Each output line is ``enrol<TAB>test<TAB>score<TAB>decision`` (``same``
when the score is at least the threshold, else ``different``).
"""

import argparse
import functools
import logging
import math
import os
import pathlib
import sys

import soundfile
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.lobes.models.ECAPA_TDNN import Classifier

from emotion_invariant.corpora.audio_check import SILENCE_PEAK
from emotion_invariant.data.audio import read_audio
from emotion_invariant.messages import shorten
from emotion_invariant.models.embedder import embed
from emotion_invariant.models.pretrained import load_pretrained_ecapa
from emotion_invariant.scoring.errors import ScoringError
from emotion_invariant.scoring.score import check_device

logger = logging.getLogger(__name__)

#: Modules a speaker model folder's ``hyperparams.yaml`` must declare.
MODULES = ("compute_features", "mean_var_norm", "embedding_model")


def model_kind(hparams):
    """What a model folder recognises, ``speaker`` or another task, and
    what says so.

    An exported folder names its ``task``; an older export, or a published
    folder, is a speaker model when its head is SpeechBrain's speaker
    ``Classifier`` (or it has none), an emotion model otherwise.

    Arguments
    ---------
    hparams : dict
        The folder's loaded ``hyperparams.yaml``.

    Returns
    -------
    tuple
        ``(kind, reason)``.

    Example
    -------
    >>> model_kind({"task": "emotion"})
    ('emotion', 'its hyperparams.yaml says task: emotion')
    >>> model_kind({"classifier": torch.nn.Sequential()})[0]
    'emotion'
    """
    task = hparams.get("task")
    if task is not None:
        return str(task), f"its hyperparams.yaml says task: {task}"
    head = hparams.get("classifier")
    if head is None or isinstance(head, Classifier):
        return "speaker", "its head is a speaker classifier"
    return "emotion", (
        f"its classifier is a {type(head).__name__} head, not SpeechBrain's "
        "speaker Classifier"
    )


def check_wav(wav):
    """The duration in seconds of a readable, non-empty audio file.

    Only the header is read.

    Raises
    ------
    ScoringError
        Naming the file: missing, unreadable or empty.

    Example
    -------
    >>> check_wav("nowhere.wav")
    Traceback (most recent call last):
    ...
    emotion_invariant.scoring.errors.ScoringError: nowhere.wav: no such file
    """
    if not os.path.exists(wav):
        raise ScoringError(f"{wav}: no such file")
    if not os.path.isfile(wav):
        raise ScoringError(f"{wav}: not a file")
    try:
        info = soundfile.info(wav)
    except Exception as err:  # libsndfile raises several types
        raise ScoringError(f"{wav}: not a readable audio file ({err})") from err
    if info.frames == 0:
        raise ScoringError(f"{wav}: no audio in the file")
    return info.frames / info.samplerate


class SpeakerVerifier:
    """Embeds wav files with a speaker model folder and scores pairs by
    cosine.

    Arguments
    ---------
    folder : str or os.PathLike
        An exported or published speaker model folder.
    device : str
        Where the model runs.

    Attributes
    ----------
    threshold : float or None
        The threshold stored in the folder, if any.

    Raises
    ------
    ScoringError
        For a folder without ``hyperparams.yaml`` or its modules, or of
        another task (an exported emotion model).
    """

    def __init__(self, folder, device="cpu"):
        folder = pathlib.Path(folder)
        path = folder / "hyperparams.yaml"
        if not path.is_file():
            raise ScoringError(f"{folder}: no hyperparams.yaml")
        with open(path, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f)
        kind, reason = model_kind(hparams)
        if kind != "speaker":
            raise ScoringError(
                f"{folder} is an {kind} model ({reason}); verify scores "
                "speaker models only (exported from a speaker-verification "
                "run, or SpeechBrain's spkrec-ecapa-voxceleb)"
            )
        missing = [name for name in MODULES if name not in hparams]
        if missing:
            raise ScoringError(
                f"{path}: no {', '.join(missing)}: not a speaker model folder"
            )
        norm = hparams["mean_var_norm"]
        stats = {}
        if (folder / "mean_var_norm.ckpt").is_file():
            # Global fbank statistics.
            stats = {
                "mean_var_norm_emb": norm,
                "names": {"mean_var_norm_emb": "mean_var_norm.ckpt"},
            }
        load_pretrained_ecapa(folder, hparams["embedding_model"], **stats)
        self.folder = folder
        self.device = device
        self.sample_rate = hparams.get("sample_rate", 16000)
        self.threshold = hparams.get("threshold")
        self.modules = torch.nn.ModuleDict(
            {name: hparams[name] for name in MODULES}
        ).to(device)
        self.modules.eval()

    def _embed_signal(self, signal):
        wavs = signal.unsqueeze(0).to(self.device)
        lens = torch.ones(1, device=self.device)
        with torch.no_grad():
            emb = embed(self.modules, wavs, lens)
        return emb.reshape(-1).cpu()

    @functools.cached_property
    def min_samples(self):
        """The fewest samples the model embeds.

        Its convolutions pad by reflection, which needs more frames than
        the padding (ECAPA-TDNN: 5 frames, 40 ms at a 10 ms hop); found by
        bisection on silence, up to one second.
        """
        low, high = 1, self.sample_rate
        while low < high:
            mid = (low + high) // 2
            try:
                self._embed_signal(torch.zeros(mid))
            except RuntimeError:
                low = mid + 1
            else:
                high = mid
        return low

    def check_duration(self, wav, seconds):
        """Fail, naming ``wav``, when its ``seconds`` of audio are fewer
        than the model embeds."""
        samples = seconds * self.sample_rate
        if samples < self.sample_rate and samples < self.min_samples:
            raise ScoringError(
                f"{wav}: {seconds * 1000:.0f} ms of audio, shorter than the "
                f"model's minimum of {self.min_samples / self.sample_rate:.3g}"
                " s"
            )

    def embed(self, wav):
        """The embedding ``[D]`` of one wav file (whole, mono, resampled),
        and whether the file is silent (peak below -80 dBFS)."""
        signal = read_audio({"ID": wav, "wav": wav}, None, self.sample_rate)
        silent = float(signal.abs().max()) < SILENCE_PEAK
        return self._embed_signal(signal), silent

    def score(self, pairs):
        """Cosine scores of ``(enrol, test)`` wav pairs.

        Every file is checked first (see :func:`check_wav`, and its
        duration against :attr:`min_samples`), then embedded once; silent
        files are scored with a warning naming them.
        """
        wavs = list(dict.fromkeys(w for pair in pairs for w in pair))
        for wav in wavs:
            self.check_duration(wav, check_wav(wav))
        cache, silent = {}, []
        for wav in wavs:
            cache[wav], is_silent = self.embed(wav)
            if is_silent:
                silent.append(wav)
        if silent:
            logger.warning(
                "%d of %d wav file(s) are silent (peak below -80 dBFS), so "
                "their scores mean little: %s",
                len(silent),
                len(wavs),
                shorten(silent),
            )
        return [
            float(torch.nn.functional.cosine_similarity(cache[a], cache[b], 0))
            for a, b in pairs
        ]


def _fields(line, where):
    """A pairs file line's ``(enrol, test)`` fields (see the module's
    docstring for the format)."""
    tabbed = "\t" in line
    fields = [f.strip() for f in line.split("\t")] if tabbed else line.split()
    if len(fields) not in (2, 3) or not all(fields):
        found = sum(1 for f in fields if f)
        raise ScoringError(
            f"{where}: expected 'ENROL TEST' or 'LABEL ENROL TEST', found "
            f"{found} field(s)" + ("" if all(fields) else " and an empty one")
        )
    if len(fields) == 3 and fields[0] not in ("0", "1"):
        hint = (
            ""
            if tabbed
            else ": a file name with a space? separate the fields with tabs"
        )
        raise ScoringError(
            f"{where}: 3 fields, and {fields[0]!r} is not a label (0 or 1)"
            + hint
        )
    return fields[-2:]


def read_pairs(path):
    """``(enrol, test)`` wav paths, one pair a line.

    A line is ``ENROL TEST`` or SpeechBrain's trial format ``LABEL ENROL
    TEST`` (the label, 0 or 1, is ignored), its fields separated by tabs
    when it holds one, else by spaces; lines starting with ``#`` and blank
    lines are skipped; relative paths are relative to the file's folder.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.txt")
    >>> _ = open(path, "w").write("# enrol test\\na.wav /x/b.wav\\n"
    ...                           "1 c.wav d.wav\\nmy e.wav\\tf#1.wav\\n")
    >>> [tuple(map(os.path.basename, pair)) for pair in read_pairs(path)]
    [('a.wav', 'b.wav'), ('c.wav', 'd.wav'), ('my e.wav', 'f#1.wav')]
    >>> _ = open(path, "w").write("my e.wav f.wav\\n")
    >>> read_pairs(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.scoring.errors.ScoringError: ...pairs.txt:1: 3 \
fields, and 'my' is not a label (0 or 1): a file name with a space? \
separate the fields with tabs
    """
    folder = os.path.dirname(os.path.abspath(path))
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = _fields(line, f"{path}:{number}")
            pairs.append(tuple(os.path.join(folder, wav) for wav in fields))
    if not pairs:
        raise ScoringError(f"{path}: no pairs")
    return pairs


def check_threshold(threshold, source="--threshold"):
    """Fail unless ``threshold`` is a finite number.

    Example
    -------
    >>> check_threshold(float("nan"))
    Traceback (most recent call last):
    ...
    emotion_invariant.scoring.errors.ScoringError: --threshold nan: not a \
finite number
    """
    if not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ScoringError(f"{source} {threshold}: not a finite number")


def verify(pairs, model, threshold=None, device="cpu"):
    """Scores and decisions of wav pairs.

    Arguments
    ---------
    pairs : list of tuple
        ``(enrol, test)`` wav paths.
    model : str or os.PathLike
        A speaker model folder.
    threshold : float, optional
        Overrides the folder's stored threshold; needed where there is
        none (SpeechBrain's published models).
    device : str
        Where the model runs.

    Returns
    -------
    tuple
        ``(scores, decisions, threshold)``; a decision is True for the
        same speaker (score at least the threshold).
    """
    if threshold is not None:
        check_threshold(threshold)
    for wav in dict.fromkeys(w for pair in pairs for w in pair):
        check_wav(wav)
    verifier = SpeakerVerifier(model, device)
    if threshold is None:
        threshold = verifier.threshold
        if threshold is None:
            raise ScoringError(
                f"{model}/hyperparams.yaml stores no threshold (SpeechBrain's "
                "published models do not, nor a back-end fitted on a "
                "manifest): pass --threshold"
            )
        check_threshold(threshold, f"{model}/hyperparams.yaml: threshold")
    scores = verifier.score(pairs)
    return scores, [s >= threshold for s in scores], float(threshold)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.verification.verify",
        description="Cosine score and same/different decision of wav pairs "
        "with a speaker model folder.",
        epilog="PAIRS: one 'ENROL TEST' (or 'LABEL ENROL TEST') a line; "
        "fields separated by tabs where a line holds one, else by spaces (a "
        "name with a space needs tabs); '#' starts a comment only at the "
        "start of a line; relative paths from the file's folder.",
    )
    parser.add_argument("enrol", nargs="?", help="enrolment wav")
    parser.add_argument("test", nargs="?", help="test wav")
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--pairs", help="file of pairs (see below)")
    parser.add_argument(
        "--threshold",
        type=float,
        help="decision threshold (default: the one the folder stores)",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu (default), cuda or cuda:N"
    )
    args = parser.parse_args(argv)
    try:
        device = check_device(args.device)
        if args.pairs:
            if args.enrol or args.test:
                raise ScoringError("give either two wav files or --pairs")
            pairs = read_pairs(args.pairs)
        elif args.enrol and args.test:
            pairs = [(args.enrol, args.test)]
        else:
            raise ScoringError("give two wav files (ENROL TEST) or --pairs")
        scores, decisions, threshold = verify(
            pairs, args.model, args.threshold, device
        )
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    source = "given" if args.threshold is not None else "stored, dev EER"
    print(f"# threshold {threshold:.6f} ({source})")
    for (enrol, test), score, same in zip(pairs, scores, decisions):
        decision = "same" if same else "different"
        print(f"{enrol}\t{test}\t{score:.6f}\t{decision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
