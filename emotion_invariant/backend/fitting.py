"""Fit a back-end on a manifest's speakers, for a model folder to apply.

Usage::

    python -m emotion_invariant.backend fit --model MODEL --manifest CSV \\
        --kind KIND [--dims N] [--set KEY=VALUE ...] [--pairs emotion] \\
        [--data-root DIR] [--batch-size B] [--device cpu] --out NEW_MODEL
    python -m emotion_invariant.backend fit --embeddings E.npz \\
        --manifest CSV --kind KIND [...] --out BACKEND.npz
    python -m emotion_invariant.backend label --emotion-model SER_MODEL \\
        --manifest CSV [--data-root DIR] --out LABELLED.csv

With ``--model`` (a speaker model folder: SpeechBrain's published
``spkrec-ecapa-voxceleb`` layout, as ``python -m
emotion_invariant.models.acquire`` writes it, or one exported by ``python
-m emotion_invariant.models.export``), every utterance of the manifest is
embedded with the model, the back-end is fitted on the manifest's speaker
labels (and ``emo`` labels for ``emotion_nap`` and ``--pairs emotion``),
and ``NEW_MODEL`` is written: the model with the back-end built in (see
:mod:`emotion_invariant.backend.module`), which
``SpeakerRecognition.from_hparams`` and ``python -m
emotion_invariant.verification.verify`` apply, plus ``backend.npz``. It is
written under a temporary name beside ``NEW_MODEL``, loaded by
SpeechBrain offline, then renamed: ``NEW_MODEL`` must not exist or be
empty. The model's decision threshold, if any, was for the embeddings
before the back-end, so none is stored.

With ``--embeddings`` (an embedding file, its ``ids`` those of the
manifest's ``ID`` column), the back-end alone is written to
``BACKEND.npz``; PLDA, which scores pairs instead of mapping embeddings,
is fitted this way only.
"""

import argparse
import ast
import inspect
import os
import pathlib
import shutil
import sys
import tempfile
from collections import Counter

from emotion_invariant.backend import KINDS, BackendError, fit
from emotion_invariant.backend.module import (
    EmbeddingWithBackend,
    require_map,
)
from emotion_invariant.backend.pseudo import agreement, label_manifest
from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.messages import os_error_message, shorten
from emotion_invariant.models.embedder import embed
from emotion_invariant.models.export import (
    backend_card,
    check_export,
    hyperparams_text,
    read_config,
    write_backend_files,
)
from emotion_invariant.scoring.embeddings import load_embeddings
from emotion_invariant.scoring.extract import extract_embeddings
from emotion_invariant.scoring.report import report_paths
from emotion_invariant.scoring.score import check_device, check_outputs
from emotion_invariant.verification.verify import SpeakerVerifier

#: The command that writes a model folder, named in what it writes.
COMMAND = "python -m emotion_invariant.backend fit"
#: What a setting of each type takes, in words.
TYPE_WORDS = {int: "an integer", float: "a number", bool: "True or False"}


def member_settings(kind):
    """The settings of the member ``kind`` and their defaults.

    Example
    -------
    >>> member_settings("within_speaker_nap")
    {'dims': 5}
    """
    signature = inspect.signature(KINDS[kind].fit)
    return {
        name: p.default
        for name, p in signature.parameters.items()
        if name not in ("embeddings", "speakers", "nuisances")
    }


def parse_settings(kind, assignments, dims=None):
    """The settings ``KEY=VALUE`` given for the member ``kind``, each of
    its default's type.

    Example
    -------
    >>> parse_settings("consistency", ["steps=200", "lr=0.1"], dims=3)
    {'steps': 200, 'lr': 0.1, 'dims': 3}
    >>> parse_settings("chain", ['members=[["wccn", {}]]'])
    {'members': (['wccn', {}],)}
    >>> parse_settings("wccn", [], dims=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.backend.base.BackendError: --dims: wccn has no such \
setting (its settings: ...)
    """
    known = member_settings(kind)
    given = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep:
            raise BackendError(f"--set {item}: expected KEY=VALUE")
        given[key.strip()] = (f"--set {item}", text.strip())
    if dims is not None:
        given["dims"] = ("--dims", str(dims))
    settings = {}
    for key, (option, text) in given.items():
        if key not in known:
            listed = ", ".join(known) or "none"
            raise BackendError(
                f"{option}: {kind} has no such setting (its settings: {listed})"
            )
        default = known[key]
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        if isinstance(default, float) and isinstance(value, int):
            value = float(value)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if type(value) is not type(default):
            what = TYPE_WORDS.get(type(default), type(default).__name__)
            raise BackendError(
                f"{option}: {key} takes {what} (its default is {default!r})"
            )
        settings[key] = value
    return settings


def manifest_labels(rows, manifest, kind, pairs):
    """The rows' speaker labels, and their emotion labels where the member
    fits on them (``emotion_nap``, or ``pairs`` ``emotion``), else None.

    Example
    -------
    >>> rows = [{"ID": "a", "spk_id": "s1", "emo": ""}]
    >>> manifest_labels(rows, "m.csv", "within_speaker_nap", "speaker")
    (['s1'], None)
    >>> manifest_labels(rows, "m.csv", "emotion_nap", "speaker")
    Traceback (most recent call last):
    ...
    emotion_invariant.backend.base.BackendError: m.csv: emotion_nap fits \
on emotion labels here, and 1 of 1 rows have none in the emo column (a)
    """
    if pairs == "emotion" and kind != "consistency":
        raise BackendError(
            f"--pairs emotion: {kind} trains on no pairs (consistency does)"
        )
    speakers = [row["spk_id"] for row in rows]
    if kind == "chain":
        # Its members say what they read: emotion labels go with it when
        # every row has one, and a member that needs them names the gap.
        if all(row["emo"] for row in rows):
            return speakers, [row["emo"] for row in rows]
        return speakers, None
    if kind != "emotion_nap" and pairs != "emotion":
        return speakers, None
    unlabelled = [row["ID"] for row in rows if not row["emo"]]
    if unlabelled:
        raise BackendError(
            f"{manifest}: {kind} fits on emotion labels here, and "
            f"{len(unlabelled)} of {len(rows)} rows have none in the emo "
            f"column ({shorten(unlabelled)})"
        )
    return speakers, [row["emo"] for row in rows]


def _fit(kind, embeddings, rows, manifest, settings, pairs):
    speakers, emotions = manifest_labels(rows, manifest, kind, pairs)
    return fit(kind, embeddings, speakers, emotions, **settings)


def fit_embeddings(embeddings, manifest, kind, out, settings=None, pairs=None):
    """Fit a back-end on an embedding file and write it to ``out``.

    Arguments
    ---------
    embeddings : str
        An embedding file (``ids``, ``embeddings``) holding every row of
        ``manifest``.
    manifest : str
        Its ``spk_id`` (and ``emo``) labels, by ``ID``.
    kind : str
        A key of :data:`~emotion_invariant.backend.KINDS`.
    out : str
        The ``.npz`` to write (atomically).
    settings : dict, optional
        The member's settings.
    pairs : str, optional
        ``emotion``: fit on emotion labels too (see
        :func:`manifest_labels`).

    Returns
    -------
    Backend
    """
    for source in (embeddings, manifest):
        if (
            os.path.exists(out)
            and os.path.exists(source)
            and os.path.samefile(source, out)
        ):
            raise BackendError(f"--out {out}: is an input; choose a new file")
    ids, vectors = load_embeddings(embeddings)
    rows = read_manifest(manifest, allow_empty_emo=True)
    index = {uid: i for i, uid in enumerate(ids)}
    missing = [row["ID"] for row in rows if row["ID"] not in index]
    if missing:
        raise BackendError(
            f"{embeddings}: no embedding for {len(missing)} of the "
            f"{len(rows)} utterances of {manifest}: {shorten(missing)}"
        )
    vectors = vectors[[index[row["ID"]] for row in rows]]
    backend = _fit(kind, vectors, rows, manifest, settings or {}, pairs)
    backend.save(out)
    return backend


def _check_out_folder(out):
    if out.is_file() or out.is_symlink():
        raise BackendError(f"{out}: is a file; choose a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise BackendError(f"{out}: not empty; choose a new or empty folder")


def _label_encoder(model):
    for name in ("label_encoder.txt", "label_encoder.ckpt"):
        if (model / name).is_file():
            return model / name
    raise BackendError(
        f"{model}: no label_encoder.txt or label_encoder.ckpt: not a "
        "complete speaker model folder"
    )


def model_card(model, backend, fitted_on):
    """README.md of a model folder written by :func:`fit_model`."""
    lines = [
        f"# {model.name} with the {backend.kind} back-end",
        "",
        f"The speaker model of `{model.name}` with a back-end, written by "
        f"`{COMMAND}`. Load it with SpeechBrain, offline:",
        "",
        "```python",
        "from speechbrain.inference.speaker import SpeakerRecognition",
        "model = SpeakerRecognition.from_hparams("
        'source="THIS_FOLDER", savedir="pretrained_models/this_model")',
        "```",
        "",
        "No decision threshold is stored (the model's, if any, was for the "
        "embeddings before the back-end): pass one to `python -m "
        "emotion_invariant.verification.verify --threshold`.",
        "",
        *backend_card(backend, fitted_on),
        f"## The model it was fitted on: {model.name}",
        "",
    ]
    card = model / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8").strip()
        lines.append(text.replace("\n#", "\n##").lstrip("#").lstrip())
    else:
        lines.append("No model card (SpeechBrain's published layout).")
    return "\n".join(lines) + "\n"


def fit_model(
    model,
    manifest,
    kind,
    out,
    settings=None,
    pairs=None,
    data_root=None,
    batch_size=16,
    device="cpu",
    progress=True,
):
    """Fit a back-end on a manifest embedded with a model folder, and write
    the model with the back-end built in.

    Arguments
    ---------
    model : str or os.PathLike
        A speaker model folder (published or exported layout).
    manifest : str
        The utterances to fit on, with their ``spk_id`` (and ``emo``).
    kind : str
        A member that maps embeddings (not ``plda``).
    out : str or os.PathLike
        The model folder to write; it must not exist or be empty.
    settings : dict, optional
        The member's settings.
    pairs : str, optional
        ``emotion``: fit on emotion labels too.
    data_root : str, optional
        What ``$data_root`` stands for in the manifest (default: its
        folder).
    batch_size : int
        Utterances embedded at once.
    device : str
        Where the model runs.
    progress : bool
        Show a progress bar while embedding.

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        A :class:`BackendError`, ``ScoringError``, ``ManifestError`` or
        ``ExportError`` naming the folder, file or row that is wrong;
        nothing is written.
    """
    model, out = pathlib.Path(model), pathlib.Path(out)
    require_map(KINDS[kind])
    _check_out_folder(out)
    verifier = SpeakerVerifier(model, device)
    if isinstance(verifier.modules["embedding_model"], EmbeddingWithBackend):
        raise BackendError(
            f"{model}: applies a back-end already; fit on the model folder "
            "it was made from"
        )
    labels = _label_encoder(model)
    if data_root is None:
        data_root = os.path.dirname(os.path.abspath(manifest))
    # Every file and label is checked before the long part.
    rows = read_manifest(
        manifest, check_audio=True, data_root=data_root, allow_empty_emo=True
    )
    manifest_labels(rows, manifest, kind, pairs)
    _, embeddings = extract_embeddings(
        rows,
        lambda wavs, lens: embed(verifier.modules, wavs, lens),
        batch_size=batch_size,
        device=device,
        data_root=data_root,
        sample_rate=verifier.sample_rate,
        progress=progress,
    )
    backend = _fit(kind, embeddings, rows, manifest, settings or {}, pairs)
    speakers = len({row["spk_id"] for row in rows})
    fitted_on = (
        f"{len(rows)} utterances of {speakers} speakers of "
        f"`{os.path.basename(manifest)}`"
    )
    cfg = read_config(model / "hyperparams.yaml")
    global_norm = (model / "mean_var_norm.ckpt").is_file()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        if global_norm:
            shutil.copyfile(
                model / "mean_var_norm.ckpt", tmp / "mean_var_norm.ckpt"
            )
        for name in ("label_encoder.txt", "label_encoder.ckpt"):
            shutil.copyfile(labels, tmp / name)
        text = hyperparams_text(
            cfg, "speaker", None, global_norm, backend=backend, writer=COMMAND
        )
        (tmp / "hyperparams.yaml").write_text(text, encoding="utf-8")
        write_backend_files(tmp, backend, model)
        card = model_card(model, backend, fitted_on)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        sources = {
            name: model / name
            for name in ("embedding_model.ckpt", "mean_var_norm.ckpt")
        }
        sources["label_encoder.txt"] = sources["label_encoder.ckpt"] = labels
        check_export(tmp, "speaker", sources)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        try:
            os.rename(tmp, out)
        except OSError as err:
            raise BackendError(
                f"{out}: another process wrote into it meanwhile; nothing "
                f"was written ({err.strerror})"
            ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return backend


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.backend",
        description="Emotion-robust scoring back-ends.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser(
        "fit",
        help="fit a back-end on a manifest's speakers",
        description="Fit a back-end on a manifest's speakers: with --model, "
        "write the model with the back-end built in (a folder that "
        "SpeechBrain's SpeakerRecognition loads); with --embeddings, the "
        "back-end alone (.npz).",
    )
    source = cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a speaker model folder")
    source.add_argument("--embeddings", help="an embedding file (.npz/.pt)")
    cmd.add_argument("--manifest", required=True, help="manifest CSV")
    cmd.add_argument("--kind", required=True, choices=list(KINDS))
    cmd.add_argument("--dims", type=int, help="dimensions removed or kept")
    cmd.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another setting of the member (e.g. shrinkage=0.3, steps=500)",
    )
    cmd.add_argument(
        "--pairs",
        choices=("speaker", "emotion"),
        help="consistency: pair utterances of a speaker in different "
        "emotions (emo labels) instead of any two",
    )
    cmd.add_argument("--data-root", help="what $data_root stands for")
    cmd.add_argument("--batch-size", type=int, default=16)
    cmd.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    cmd.add_argument(
        "--out",
        required=True,
        help="with --model, the model folder to write (new or empty); with "
        "--embeddings, the .npz to write",
    )
    cmd = commands.add_parser(
        "score",
        help="score a trial list through a saved back-end",
        description="Map the embeddings (and the cohort) with a saved "
        "back-end, then score the trials as python -m "
        "emotion_invariant.scoring does (PLDA: its own pair scores).",
    )
    cmd.add_argument("--backend", required=True, help="a saved back-end")
    cmd.add_argument("--embeddings", required=True, help=".npz/.pt file")
    cmd.add_argument("--trials", required=True, help="trial list")
    cmd.add_argument("--out", required=True, help="score file to write")
    cmd.add_argument("--cohort", help="cohort embedding file")
    cmd.add_argument(
        "--norm", default="none", choices=("none", "z", "t", "s", "as")
    )
    cmd.add_argument("--topk", type=int, default=300)
    cmd.add_argument("--report", help="JSON report (markdown, DET beside)")
    cmd.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    cmd = commands.add_parser(
        "label",
        help="label a manifest's emotions with an emotion model",
        description="Write the manifest with each utterance's emotion as "
        "an exported emotion model predicts it (in emo; the corpus's own in "
        "emo_true), for fit --kind emotion_nap on a corpus with no emotion "
        "labels. Pass the same --data-root to fit.",
    )
    cmd.add_argument(
        "--emotion-model", required=True, help="an emotion model folder"
    )
    cmd.add_argument("--manifest", required=True, help="manifest CSV")
    cmd.add_argument("--data-root", help="what $data_root stands for")
    cmd.add_argument("--batch-size", type=int, default=16)
    cmd.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    cmd.add_argument("--out", required=True, help="the manifest to write")
    args = parser.parse_args(argv)
    command = {"score": _score, "fit": _fit_command, "label": _label}[
        args.command
    ]
    try:
        print(command(args))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {os_error_message(err)}", file=sys.stderr)
        return 1
    return 0


def _fit_command(args):
    """``fit``; returns the line to print."""
    settings = parse_settings(args.kind, args.set, args.dims)
    if args.model:
        backend = fit_model(
            args.model,
            args.manifest,
            args.kind,
            args.out,
            settings,
            args.pairs,
            args.data_root,
            args.batch_size,
            check_device(args.device),
        )
    else:
        backend = fit_embeddings(
            args.embeddings,
            args.manifest,
            args.kind,
            args.out,
            settings,
            args.pairs,
        )
    shown = ", ".join(
        f"{key} {value}"
        for key, value in backend.settings.items()
        if key != "dim"
    )
    return f"{backend.kind} ({shown or 'no settings'}) -> {args.out}"


def _label(args):
    """``label``; returns the lines to print."""
    rows = label_manifest(
        args.emotion_model,
        args.manifest,
        args.out,
        args.data_root,
        args.batch_size,
        check_device(args.device),
    )
    counts = Counter(row["emo"] for row in rows)
    lines = [
        f"{len(rows)} utterances labelled -> {args.out}: "
        + ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))
    ]
    pairs = agreement(rows)
    if pairs:
        same = sum(n for (true, pred), n in pairs.items() if true == pred)
        lines.append(
            f"the manifest's own labels: {same} of {sum(pairs.values())} "
            "predicted alike (label sets may differ)"
        )
    return "\n".join(lines)


def _score(args):
    """``score``; returns the line to print."""
    from emotion_invariant.backend.scoring import score_with_backend

    outputs = {"--out": args.out}
    if args.report is not None:
        md, png = report_paths(args.report)
        outputs.update({"--report": args.report, "--report (markdown)": md})
        outputs["--report (DET plot)"] = png
    inputs = {
        "--backend": args.backend,
        "--embeddings": args.embeddings,
        "--trials": args.trials,
        "--cohort": args.cohort,
    }
    check_outputs(outputs, inputs)
    score_with_backend(
        args.backend,
        args.embeddings,
        args.trials,
        args.out,
        cohort=args.cohort,
        norm=args.norm,
        topk=args.topk,
        report=args.report,
        device=check_device(args.device),
    )
    return f"{args.out}: scored through {args.backend}"


if __name__ == "__main__":
    sys.exit(main())
