"""An exported folder loaded as its users will, before it is published,
and the speaker model's decision threshold measured with it.

Every parameter file is loaded into the modules the folder's
``hyperparams.yaml`` builds, then SpeechBrain's inference class loads the
folder, offline, and embeds one second of synthetic audio, which must give
finite numbers (:func:`check_export`); a damaged file is named as it is in
the run. The loaded speaker model embeds the run's dev trials for the
cosine threshold at their EER (:func:`dev_threshold`).
"""

import os
import tempfile

import torch
from hyperpyyaml import load_hyperpyyaml

from emotion_invariant.backend.module import NoClassifier
from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.data.trials import make_trials
from emotion_invariant.emotion.layer_model import enrol_speaker
from emotion_invariant.models.folder import ExportError
from emotion_invariant.models.pretrained import (
    PretrainedError,
    load_pretrained_ecapa,
)
from emotion_invariant.scoring.extract import extract_embeddings
from emotion_invariant.scoring.metrics import eer
from emotion_invariant.scoring.pipeline import score_trials


def _in_run(message, folder, sources):
    """``message`` with the exported files' paths replaced by those of the
    run's files they were copied from."""
    for name, source in sources.items():
        message = message.replace(str(folder / name), str(source))
    return message


def check_export(folder, task, sources):
    """Load an exported folder as its users will, before it is published.

    Every parameter file is loaded, strictly, into the modules that the
    folder's ``hyperparams.yaml`` builds; then SpeechBrain's inference
    class loads the folder, offline, and embeds one second of synthetic
    audio (an emotion model also scores it with its head), which must give
    finite numbers.

    Arguments
    ---------
    folder : pathlib.Path
        The exported folder (under its temporary name).
    task : str
        ``speaker`` or ``emotion`` (a key of
        :data:`~emotion_invariant.models.folder.TASKS`).
    sources : dict
        Exported file name -> the run's file it was copied from, named in
        errors instead of the temporary copy.

    Returns
    -------
    speechbrain.inference.classifiers.EncoderClassifier
        The loaded model (``SpeakerRecognition`` for a speaker model).

    Raises
    ------
    ExportError
        Naming the run's file that does not load (corrupt, truncated, of
        another shape), or the checkpoint whose model gives NaN or inf.
    """
    from speechbrain.inference.classifiers import EncoderClassifier
    from speechbrain.inference.speaker import SpeakerRecognition

    with open(folder / "hyperparams.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f)
    head = hparams["classifier"]
    try:
        load_pretrained_ecapa(
            folder,
            hparams["embedding_model"],
            None if isinstance(head, NoClassifier) else head,
            hparams["mean_var_norm_emb"],
            hparams["label_encoder"],
        )
        if (folder / "mean_var_norm.ckpt").is_file():
            load_pretrained_ecapa(
                folder,
                hparams["embedding_model"],
                mean_var_norm_emb=hparams["mean_var_norm"],
                names={"mean_var_norm_emb": "mean_var_norm.ckpt"},
            )
    except PretrainedError as err:
        raise ExportError(_in_run(str(err), folder, sources)) from None
    interface = SpeakerRecognition if task == "speaker" else EncoderClassifier
    with tempfile.TemporaryDirectory() as savedir:
        model = interface.from_hparams(
            source=str(folder), savedir=savedir, run_opts={"device": "cpu"}
        )
    rate = hparams.get("sample_rate", 16000)
    audio = 0.1 * torch.randn(
        1, rate, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        if (
            getattr(model.mods.embedding_model, "speaker_norm", "none")
            != "none"
        ):
            # A model that normalises each speaker needs one enrolled.
            enrol_speaker(model, [audio[0], audio[0].flip(0)])
        outputs = [model.encode_batch(audio, torch.ones(1))]
        if task == "emotion":
            # classify_batch's scores, without its label decoding
            outputs.append(model.mods.classifier(outputs[0]))
    if not all(bool(torch.isfinite(x).all()) for x in outputs):
        checkpoint = sources["embedding_model.ckpt"].parent
        raise ExportError(
            f"{checkpoint}: the model gives NaN or inf values on one second "
            "of synthetic audio (diverged training, or damaged statistics)"
        )
    return model


def dev_threshold(model, cfg):
    """Cosine threshold at the EER of the run's dev trials, embedded with
    the exported model as SpeechBrain loads it; None without the dev data.

    The trials are those the recipe selected its checkpoint with.

    Arguments
    ---------
    model : speechbrain.inference.speaker.SpeakerRecognition
        The exported folder, loaded (see :func:`check_export`).
    cfg : dict
        The run's configuration (see
        :func:`~emotion_invariant.models.folder.read_run_config`).
    """
    manifest = cfg["valid_annotation"]
    if cfg.get("fold") is not None:
        manifest = os.path.join(
            cfg["manifest_folder"], f"fold_{cfg['fold']}", "dev.csv"
        )
    # Paths as the run recorded them: relative ones from where it started.
    if not (os.path.isfile(manifest) and os.path.isdir(cfg["data_folder"])):
        return None
    rows = read_manifest(manifest)
    trials = make_trials(
        rows, seed=0, max_per_condition=cfg["dev_trials_per_condition"]
    )
    ids, emb = extract_embeddings(
        rows,
        model.encode_batch,
        batch_size=cfg.get("eval_batch_size", 16),
        device="cpu",
        data_root=str(cfg["data_folder"]),
        sample_rate=cfg.get("sample_rate", 16000),
        progress=False,
    )
    scores = score_trials((ids, emb), trials, device="cpu")
    labels = torch.tensor([t[0] for t in trials])
    return eer(scores, labels)[1]
