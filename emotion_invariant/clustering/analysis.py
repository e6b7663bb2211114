"""Cluster each speaker's embeddings and see how the clusters follow emotion.

The analysis of Ulgen, Du, Busso and Sisman (ICASSP 2024) as a command
line::

    python -m emotion_invariant.clustering --manifest M
        (--embeddings E | --model FOLDER) --out DIR
        [--k K | --k-range LOW HIGH] [--seed S] [--speaker SPK]
        [--projection pca|tsne] [--shuffles N]
        [--n-mels 80] [--channels 128 128 128 128 384]
        [--attention-channels 64] [--se-channels 128] [--lin-neurons 192]
        [--batch-size 16] [--device cpu|cuda] [--data-root DIR]

Embeddings come from a file (``.npz``/``.pt``) covering the manifest's
rows, or from a local ECAPA-TDNN model folder (SpeechBrain's published
layout or a checkpoint folder of our speaker-verification recipe), built
with the given sizes and run as the recipe does (Fbank, sentence mean
normalisation, ECAPA, eval mode); they are then saved as
``DIR/embeddings.npz``. Writes ``DIR/clusters.csv`` (ID, spk_id, emo,
cluster), ``DIR/cluster_report.json`` and ``.md``, and
``DIR/speaker_<spk>.png`` for one speaker (default: the first).
"""

import argparse
import csv
import json
import os
import re
import sys
from functools import partial

import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.processing.features import InputNormalization
from speechbrain.utils.distributed import run_on_main

from emotion_invariant.atomic import atomic_open
from emotion_invariant.clustering.kmeans import (
    PROJECTIONS,
    ClusteringError,
    cluster_report,
    cluster_speakers,
    plot_speaker,
    read_clusters,
    report_markdown,
)
from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.messages import shorten
from emotion_invariant.models.embedder import (
    DILATIONS,
    ECAPA_SIZES,
    KERNEL_SIZES,
    embed,
)
from emotion_invariant.models.pretrained import load_pretrained_ecapa
from emotion_invariant.scoring import (
    extract_embeddings,
    load_embeddings,
    save_embeddings,
)

RECIPE_SIZES = ECAPA_SIZES
RES2NET_SCALE = 8


def embeddings_for_rows(path, rows):
    """The rows' embeddings, in row order, from an embedding file.

    Arguments
    ---------
    path : str
        ``.npz``/``.pt`` file (see
        :func:`emotion_invariant.scoring.load_embeddings`); it may hold
        more ids than the rows.
    rows : list of dict
        Manifest rows with ``ID``.

    Returns
    -------
    torch.Tensor
        float32 ``[len(rows), D]``.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "e.npz")
    >>> save_embeddings(path, ["a", "b"], torch.eye(2))
    >>> embeddings_for_rows(path, [{"ID": "b"}])
    tensor([[0., 1.]])
    >>> embeddings_for_rows(path, [{"ID": "c"}])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.clustering.kmeans.ClusteringError: .../e.npz: no \
embedding for 1 of 1 manifest row(s): 'c'
    """
    ids, matrix = load_embeddings(path)
    where = {uid: index for index, uid in enumerate(ids)}
    missing = [row["ID"] for row in rows if row["ID"] not in where]
    if missing:
        shown = shorten(map(repr, missing), 10)
        raise ClusteringError(
            f"{path}: no embedding for {len(missing)} of {len(rows)} manifest "
            f"row(s): {shown}"
        )
    return matrix[[where[row["ID"]] for row in rows]]


def _check_sizes(n_mels, channels, attention_channels, se_channels, lin):
    channels = [int(c) for c in channels]
    if len(channels) != len(KERNEL_SIZES):
        raise ClusteringError(
            f"--channels needs {len(KERNEL_SIZES)} values (one per ECAPA "
            f"block), got {len(channels)}"
        )
    odd = [c for c in channels[1:-1] if c % RES2NET_SCALE]
    sizes = (n_mels, *channels, attention_channels, se_channels, lin)
    if min(sizes) < 1 or odd:
        raise ClusteringError(
            "ECAPA sizes must be positive and the middle three --channels "
            f"multiples of {RES2NET_SCALE} (Res2Net scale), got n_mels "
            f"{n_mels}, channels {channels}, attention {attention_channels},"
            f" se {se_channels}, lin {lin}"
        )
    return channels


def ecapa_embedder(
    folder,
    n_mels=RECIPE_SIZES["n_mels"],
    channels=RECIPE_SIZES["channels"],
    attention_channels=RECIPE_SIZES["attention_channels"],
    se_channels=RECIPE_SIZES["se_channels"],
    lin_neurons=RECIPE_SIZES["lin_neurons"],
    device="cpu",
):
    """An ``embed(wavs, rel_lens)`` function from a local ECAPA folder.

    Builds SpeechBrain's ``ECAPA_TDNN`` with the given sizes (defaults:
    ``hparams/speaker_verification/ecapa_base.yaml``), loads its weights
    with :func:`emotion_invariant.models.pretrained.load_pretrained_ecapa` and
    embeds as the recipe does: ``Fbank``, sentence mean normalisation,
    ECAPA, in eval mode (deterministic: no dither, no dropout).

    Arguments
    ---------
    folder : str
        Published-style ECAPA folder or checkpoint folder.
    n_mels, channels, attention_channels, se_channels, lin_neurons
        ECAPA-TDNN sizes; they must match the saved weights.
    device : str
        Where the model runs.

    Returns
    -------
    callable
        ``embed(wavs [B, T], rel_lens [B]) -> [B, 1, lin_neurons]``.

    Example
    -------
    >>> import tempfile
    >>> ecapa_embedder(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.models.pretrained.PretrainedError: ...: no \
embedding_model.ckpt and no CKPT+* checkpoint folder (found: nothing)
    """
    channels = _check_sizes(
        n_mels, channels, attention_channels, se_channels, lin_neurons
    )
    model = ECAPA_TDNN(
        input_size=n_mels,
        channels=channels,
        kernel_sizes=list(KERNEL_SIZES),
        dilations=list(DILATIONS),
        attention_channels=attention_channels,
        se_channels=se_channels,
        lin_neurons=lin_neurons,
    )
    load_pretrained_ecapa(folder, model)
    model.eval().to(device)
    features = Fbank(n_mels=n_mels).to(device)
    normalise = InputNormalization(norm_type="sentence", std_norm=False)

    modules = {
        "compute_features": features,
        "mean_var_norm": normalise,
        "embedding_model": model,
    }
    return partial(embed, modules)


def _safe_name(speaker):
    return re.sub(r"[^A-Za-z0-9._-]", "_", speaker)


def _write_clusters(path, rows, cluster_ids):
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "spk_id", "emo", "cluster"])
        for row, cluster_id in zip(rows, cluster_ids):
            writer.writerow([row["ID"], row["spk_id"], row["emo"], cluster_id])


def cluster(
    manifest,
    out,
    embeddings=None,
    model=None,
    k=None,
    k_range=(2, 6),
    seed=0,
    speaker=None,
    projection="pca",
    shuffles=20,
    n_mels=RECIPE_SIZES["n_mels"],
    channels=RECIPE_SIZES["channels"],
    attention_channels=RECIPE_SIZES["attention_channels"],
    se_channels=RECIPE_SIZES["se_channels"],
    lin_neurons=RECIPE_SIZES["lin_neurons"],
    batch_size=16,
    device=None,
    data_root=None,
    progress=False,
):
    """Cluster a manifest's speakers; write clusters, report and a plot.

    Arguments
    ---------
    manifest : str
        Manifest CSV (rows without an emotion label are allowed).
    out : str
        Output folder.
    embeddings : str, optional
        Embedding file covering the manifest's ids (or give ``model``).
    model : str, optional
        Local ECAPA folder to embed the manifest's audio with.
    k : int, optional
        Fixed clusters per speaker (default: chosen by silhouette).
    k_range : tuple of int
        Range of k tried per speaker.
    seed : int
        Seed of k-means, of the shuffled baseline and of t-SNE.
    speaker : str, optional
        Speaker to plot (default: the manifest's first).
    projection : str
        ``"pca"`` or ``"tsne"``.
    shuffles : int
        Shufflings averaged in the baseline.
    n_mels, channels, attention_channels, se_channels, lin_neurons
        ECAPA sizes for ``model``.
    batch_size : int
        Utterances per forward pass for ``model``.
    device : str, optional
        ``cpu`` or ``cuda`` for ``model`` (default: ``cuda`` if available).
    data_root : str, optional
        What ``$data_root`` stands for (default: the manifest's folder).
    progress : bool
        Show a progress bar while embedding.

    Returns
    -------
    dict
        ``clusters`` (:class:`~emotion_invariant.clustering.\
SpeakerClustering`), ``report`` and ``speaker`` (the one plotted).

    Example
    -------
    >>> import tempfile
    >>> from emotion_invariant.data.manifest import write_manifest
    >>> folder = tempfile.mkdtemp()
    >>> rows = [{"ID": f"u{i}", "duration": 1.0, "wav": f"u{i}.wav",
    ...          "spk_id": "s1", "emo": "ang" if i < 3 else "sad"}
    ...         for i in range(6)]
    >>> write_manifest(rows, os.path.join(folder, "m.csv"))
    >>> emb = torch.eye(2)[[0, 0, 0, 1, 1, 1]] + 0.01 * torch.arange(6)[:, None]
    >>> save_embeddings(os.path.join(folder, "e.npz"),
    ...                 [r["ID"] for r in rows], emb)
    >>> result = cluster(os.path.join(folder, "m.csv"),
    ...                  os.path.join(folder, "out"),
    ...                  embeddings=os.path.join(folder, "e.npz"),
    ...                  k_range=(2, 3))
    >>> result["clusters"].k, result["report"]["overall"]["nmi"]
    ({'s1': 2}, 1.0)
    """
    if (embeddings is None) == (model is None):
        raise ClusteringError("give exactly one of embeddings or model")
    if projection not in PROJECTIONS:
        raise ClusteringError(
            f"unknown projection {projection!r}; use one of {PROJECTIONS}"
        )
    if data_root is None:
        data_root = os.path.dirname(os.path.abspath(manifest))
    rows = read_manifest(manifest, data_root=data_root, allow_empty_emo=True)
    speakers = [row["spk_id"] for row in rows]
    if speaker is None:
        speaker = speakers[0]
    elif speaker not in speakers:
        known = ", ".join(sorted(set(speakers))[:10])
        raise ClusteringError(
            f"{manifest}: speaker {speaker!r} has no utterance (speakers: "
            f"{known}{', ...' if len(set(speakers)) > 10 else ''})"
        )
    if model is not None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        embed = ecapa_embedder(
            model,
            n_mels,
            channels,
            attention_channels,
            se_channels,
            lin_neurons,
            device,
        )
        ids, matrix = extract_embeddings(
            rows,
            embed,
            batch_size=batch_size,
            device=device,
            data_root=data_root,
            progress=progress,
        )
    else:
        matrix = embeddings_for_rows(embeddings, rows)
    found = cluster_speakers(matrix, speakers, k=k, k_range=k_range, seed=seed)
    emotions = [row["emo"] for row in rows]
    report = cluster_report(found.ids, speakers, emotions, seed, shuffles)
    report["clustering"] = {
        "k": found.k,
        "fixed_k": k,
        "k_range": None if k is not None else list(k_range),
        "seed": seed,
        "silhouette": found.silhouette,
        "embeddings": embeddings or os.path.join(out, "embeddings.npz"),
    }
    if model is not None:
        save_embeddings(os.path.join(out, "embeddings.npz"), ids, matrix)
    _write_clusters(os.path.join(out, "clusters.csv"), rows, found.ids)
    with atomic_open(os.path.join(out, "cluster_report.json")) as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    with atomic_open(os.path.join(out, "cluster_report.md")) as f:
        f.write(report_markdown(report))
    chosen = [i for i, spk in enumerate(speakers) if spk == speaker]
    plot_speaker(
        matrix[chosen],
        [found.ids[i] for i in chosen],
        [emotions[i] for i in chosen],
        os.path.join(out, f"speaker_{_safe_name(speaker)}.png"),
        f"speaker {speaker}, k={found.k[speaker]}",
        method=projection,
        seed=seed,
    )
    return {"clusters": found, "report": report, "speaker": speaker}


def pretraining_clusters(hparams, rows, device):
    """Each row's cluster: read, computed from ``speaker_model``, or none.

    With ``speaker_model`` the rows are embedded and clustered per speaker
    (:func:`cluster`, on the main process), and
    ``clusters.csv``, its report and a plot land in ``cluster_folder``.
    Without clusters (``positives: random_same_speaker``) each speaker is
    one cluster.

    Arguments
    ---------
    hparams : dict
        The pretraining hyperparameters (``clusters_file``,
        ``speaker_model``, ``cluster_*``, ``pretrain_annotation``, ...).
    rows : list of dict
        The pretraining manifest's rows.
    device : str
        Where the speaker model embeds.

    Returns
    -------
    list of str
        Each row's cluster (or speaker).
    """
    path = hparams["clusters_file"]
    if hparams["speaker_model"]:
        run_on_main(
            cluster,
            kwargs={
                "manifest": hparams["pretrain_annotation"],
                "out": hparams["cluster_folder"],
                "model": hparams["speaker_model"],
                "k": hparams["cluster_k"],
                "k_range": tuple(hparams["cluster_k_range"]),
                "seed": hparams["cluster_seed"],
                "batch_size": hparams["eval_batch_size"],
                "device": device,
                "data_root": hparams["data_folder"],
                **hparams["speaker_model_sizes"],
            },
        )
        path = os.path.join(hparams["cluster_folder"], "clusters.csv")
    if not path:
        return [row["spk_id"] for row in rows]
    return read_clusters(path, rows)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.clustering",
        description="Cluster each speaker's embeddings with k-means and "
        "report how the clusters follow emotion (purity, NMI, ARI against "
        "emotions shuffled within speaker).",
    )
    parser.add_argument("--manifest", required=True, help="manifest CSV")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--embeddings", help=".npz/.pt embedding file")
    source.add_argument("--model", help="local ECAPA model folder")
    parser.add_argument("--out", required=True, help="output folder")
    chooser = parser.add_mutually_exclusive_group()
    chooser.add_argument("--k", type=int, help="fixed clusters per speaker")
    chooser.add_argument(
        "--k-range",
        type=int,
        nargs=2,
        default=(2, 6),
        metavar=("LOW", "HIGH"),
        help="k tried per speaker, chosen by silhouette (default: 2 6)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speaker", help="speaker to plot (default: first)")
    parser.add_argument("--projection", choices=PROJECTIONS, default="pca")
    parser.add_argument("--shuffles", type=int, default=20)
    parser.add_argument("--n-mels", type=int, default=RECIPE_SIZES["n_mels"])
    parser.add_argument(
        "--channels", type=int, nargs=5, default=RECIPE_SIZES["channels"]
    )
    parser.add_argument(
        "--attention-channels",
        type=int,
        default=RECIPE_SIZES["attention_channels"],
    )
    parser.add_argument(
        "--se-channels", type=int, default=RECIPE_SIZES["se_channels"]
    )
    parser.add_argument(
        "--lin-neurons", type=int, default=RECIPE_SIZES["lin_neurons"]
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", choices=("cpu", "cuda"))
    parser.add_argument(
        "--data-root", help="what $data_root means (default: manifest folder)"
    )
    args = parser.parse_args(argv)
    try:
        result = cluster(
            args.manifest,
            args.out,
            embeddings=args.embeddings,
            model=args.model,
            k=args.k,
            k_range=tuple(args.k_range),
            seed=args.seed,
            speaker=args.speaker,
            projection=args.projection,
            shuffles=args.shuffles,
            n_mels=args.n_mels,
            channels=args.channels,
            attention_channels=args.attention_channels,
            se_channels=args.se_channels,
            lin_neurons=args.lin_neurons,
            batch_size=args.batch_size,
            device=args.device,
            data_root=args.data_root,
            progress=True,
        )
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    report = result["report"]
    ks = sorted(result["clusters"].k.values())
    print(
        f"clustered {report['n_utterances']} utterances of "
        f"{report['n_speakers']} speaker(s), k from {ks[0]} to {ks[-1]} "
        f"-> {args.out}"
    )
    if report["macro"] is not None:
        mean, chance = report["macro"], report["macro"]["shuffled"]
        print(
            "mean over speakers: "
            + "  ".join(
                f"{m} {mean[m]:.3f} (shuffled {chance[m]:.3f})"
                for m in ("purity", "nmi", "ari")
            )
        )
    return 0
