"""Is this the same speaker? Cosine scores of wav pairs with a model folder.

Works on a folder written by ``python -m emotion_invariant.models.export``
(which stores the cosine threshold at the dev speakers' EER in its
``hyperparams.yaml``) and on SpeechBrain's published ``spkrec-ecapa-voxceleb``
layout (no stored threshold: pass ``--threshold``). Offline: the folder's
``hyperparams.yaml`` builds the modules, and the parameter files are read
from the folder itself, whatever its ``pretrained_path`` says.

Usage::

    python -m emotion_invariant.scoring.verify ENROL.wav TEST.wav --model FOLDER
    python -m emotion_invariant.scoring.verify --pairs PAIRS.txt --model FOLDER

Each output line is ``enrol test score decision`` (``same`` when the score
is at least the threshold, else ``different``).
"""

import argparse
import os
import pathlib
import sys

import torch
from hyperpyyaml import load_hyperpyyaml

from emotion_invariant.data.audio import read_audio
from emotion_invariant.models.embedder import embed
from emotion_invariant.models.pretrained import load_pretrained_ecapa
from emotion_invariant.scoring.errors import ScoringError


class SpeakerVerifier:
    """Embeds wav files with a model folder and scores pairs by cosine.

    Arguments
    ---------
    folder : str or os.PathLike
        An exported or published model folder.
    device : str
        Where the model runs.

    Attributes
    ----------
    threshold : float or None
        The threshold stored in the folder, if any.
    """

    def __init__(self, folder, device="cpu"):
        folder = pathlib.Path(folder)
        path = folder / "hyperparams.yaml"
        if not path.is_file():
            raise ScoringError(f"{folder}: no hyperparams.yaml")
        with open(path, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f)
        norm = hparams["mean_var_norm"]
        stats = {}
        if (folder / "mean_var_norm.ckpt").is_file():
            # Global fbank statistics (an exported emotion model's).
            stats = {
                "mean_var_norm_emb": norm,
                "names": {"mean_var_norm_emb": "mean_var_norm.ckpt"},
            }
        load_pretrained_ecapa(folder, hparams["embedding_model"], **stats)
        self.device = device
        self.sample_rate = hparams.get("sample_rate", 16000)
        self.threshold = hparams.get("threshold")
        self.modules = torch.nn.ModuleDict(
            {
                "compute_features": hparams["compute_features"],
                "mean_var_norm": norm,
                "embedding_model": hparams["embedding_model"],
            }
        ).to(device)
        self.modules.eval()

    def embed(self, wav):
        """The embedding ``[D]`` of one wav file (whole, mono, resampled)."""
        signal = read_audio({"ID": wav, "wav": wav}, None, self.sample_rate)
        wavs = signal.unsqueeze(0).to(self.device)
        lens = torch.ones(1, device=self.device)
        with torch.no_grad():
            emb = embed(self.modules, wavs, lens)
        return emb.reshape(-1).cpu()

    def score(self, pairs):
        """Cosine scores of ``(enrol, test)`` wav pairs, each file embedded
        once."""
        cache = {}
        for wav in {w for pair in pairs for w in pair}:
            cache[wav] = self.embed(wav)
        return [
            float(torch.nn.functional.cosine_similarity(cache[a], cache[b], 0))
            for a, b in pairs
        ]


def read_pairs(path):
    """``(enrol, test)`` wav paths, one pair a line.

    A line is ``ENROL TEST`` or SpeechBrain's trial format ``LABEL ENROL
    TEST`` (the label is ignored); blank lines and ``#`` comments are
    skipped; relative paths are relative to the file's folder.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pairs.txt")
    >>> _ = open(path, "w").write("# enrol test\\na.wav /x/b.wav\\n"
    ...                           "1 c.wav d.wav\\n")
    >>> [tuple(map(os.path.basename, pair)) for pair in read_pairs(path)]
    [('a.wav', 'b.wav'), ('c.wav', 'd.wav')]
    >>> _ = open(path, "w").write("a.wav\\n")
    >>> read_pairs(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.scoring.errors.ScoringError: ...pairs.txt:1: expected \
'ENROL TEST' or 'LABEL ENROL TEST', found 1 field(s)
    """
    folder = os.path.dirname(os.path.abspath(path))
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) not in (2, 3):
                raise ScoringError(
                    f"{path}:{number}: expected 'ENROL TEST' or 'LABEL ENROL "
                    f"TEST', found {len(fields)} field(s)"
                )
            pairs.append(
                tuple(os.path.join(folder, wav) for wav in fields[-2:])
            )
    if not pairs:
        raise ScoringError(f"{path}: no pairs")
    return pairs


def verify(pairs, model, threshold=None, device="cpu"):
    """Scores and decisions of wav pairs.

    Arguments
    ---------
    pairs : list of tuple
        ``(enrol, test)`` wav paths.
    model : str or os.PathLike
        A model folder.
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
    verifier = SpeakerVerifier(model, device)
    if threshold is None:
        threshold = verifier.threshold
    if threshold is None:
        raise ScoringError(
            f"{model}/hyperparams.yaml stores no threshold (SpeechBrain's "
            "published models do not): pass --threshold"
        )
    scores = verifier.score(pairs)
    return scores, [s >= threshold for s in scores], float(threshold)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.scoring.verify",
        description="Cosine score and same/different decision of wav pairs.",
    )
    parser.add_argument("enrol", nargs="?", help="enrolment wav")
    parser.add_argument("test", nargs="?", help="test wav")
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--pairs", help="file of 'ENROL TEST' lines")
    parser.add_argument(
        "--threshold",
        type=float,
        help="decision threshold (default: the one the folder stores)",
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        if args.pairs:
            if args.enrol or args.test:
                raise ScoringError("give either two wav files or --pairs")
            pairs = read_pairs(args.pairs)
        elif args.enrol and args.test:
            pairs = [(args.enrol, args.test)]
        else:
            raise ScoringError("give two wav files (ENROL TEST) or --pairs")
        scores, decisions, threshold = verify(
            pairs, args.model, args.threshold, args.device
        )
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    source = "given" if args.threshold is not None else "stored, dev EER"
    print(f"# threshold {threshold:.6f} ({source})")
    for (enrol, test), score, same in zip(pairs, scores, decisions):
        decision = "same" if same else "different"
        print(f"{enrol} {test} {score:.6f} {decision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
