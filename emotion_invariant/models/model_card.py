"""The model card (``README.md``) of an exported model folder: how to load
it with SpeechBrain, what it was trained on and with which switches, its
decision threshold, the back-end it applies, the run's evaluation report
and the licence.
"""

import os
import pathlib

from emotion_invariant.models.folder import TASKS


def backend_card(backend, fitted_on=None):
    """The model card's section on the back-end a model applies.

    Example
    -------
    >>> import torch
    >>> from emotion_invariant.backend import fit
    >>> nap = fit("within_speaker_nap", torch.eye(3).repeat(2, 1), [0, 1, 2]
    ...           * 2, dims=1)
    >>> "the `within_speaker_nap` back-end (`dims: 1`)" in backend_card(nap)[2]
    True
    """
    settings = ", ".join(
        f"`{k}: {v}`" for k, v in backend.settings.items() if k != "dim"
    )
    where = f", fitted on {fitted_on}" if fitted_on else ""
    return [
        "## Back-end",
        "",
        "The embeddings are those of the encoder mapped by the "
        f"`{backend.kind}` back-end ({settings or 'no settings'}){where}, so "
        "SpeechBrain's `encode_batch` and `verify_batch` apply it.",
        "`backend.npz` holds the back-end "
        "(`emotion_invariant.backend.load_backend`). The folder has no "
        "speaker classifier: the head scored the encoder's own embeddings.",
        "",
    ]


def model_card(run_folder, cfg, task, ckpt, threshold, backend=None):
    """README.md of the exported folder."""
    spec = TASKS[task]
    run = pathlib.Path(run_folder)
    meta = ckpt / "CKPT.yaml"
    chosen = meta.read_text().strip() if meta.is_file() else "(no meta)"
    lines = [
        f"# {cfg.get('experiment', task)}: "
        + ("speaker verification" if task == "speaker" else "emotion")
        + " model",
        "",
        f"Exported from `{run.name}` (checkpoint `{ckpt.name}`) by "
        "`python -m emotion_invariant.models.export`. Load it with "
        "SpeechBrain, offline:",
        "",
        "```python",
        f"from {spec['interface'].rsplit('.', 1)[0]} import "
        f"{spec['interface'].rsplit('.', 1)[1]}",
        f"model = {spec['interface'].rsplit('.', 1)[1]}.from_hparams("
        'source="THIS_FOLDER", savedir="pretrained_models/this_model")',
        "```",
        "",
        "## Training",
        "",
        f"- corpus: `{cfg.get('corpus')}` (data folder "
        f"`{os.path.basename(str(cfg.get('data_folder')).rstrip('/'))}`)",
        f"- checkpoint meta: `{' '.join(chosen.splitlines()[1:])}`",
        "- method switches: "
        + ", ".join(f"`{k}: {cfg[k]}`" for k in spec["switches"] if k in cfg),
    ]
    if threshold is not None:
        lines.append(f"- decision threshold (dev EER): `{threshold:.6f}`")
    if task == "speaker" and cfg.get("emotion_nap_dims"):
        lines.append(
            "- the results below removed emotion directions (NAP) from the "
            "embeddings before scoring; this model "
            + ("does not" if backend is None else "applies the back-end below")
        )
    lines.append("")
    if backend is not None:
        lines += backend_card(backend)
    report = run / "eval" / "report.md"
    lines += ["## Results (the run's evaluation report)", ""]
    if report.is_file():
        text = report.read_text(encoding="utf-8").strip()
        lines.append(text.replace("\n# ", "\n### ").replace("# ", "### ", 1))
    else:
        lines.append("No evaluation report in the run folder.")
    lines += [
        "",
        "## Licence",
        "",
        "Code: Apache-2.0. The weights were trained on the corpus above: "
        "its licence terms apply to them.",
        "",
    ]
    return "\n".join(lines)
