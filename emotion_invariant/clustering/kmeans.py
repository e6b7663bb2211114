"""Emotional clusters in speaker embeddings, found per speaker by k-means.

The analysis of "Revealing Emotional Clusters in Speaker Embeddings: A
Contrastive Learning Strategy for Speech Emotion Recognition" (Ulgen, Du,
Busso and Sisman, ICASSP 2024): each speaker's L2-normalised embeddings are
clustered with k-means, k picked by silhouette score, and the clusters are
compared with the emotion labels (purity, NMI, ARI) against a baseline of
emotions shuffled within each speaker.
"""

import csv
import os
from typing import NamedTuple

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.metrics.cluster import contingency_matrix

from emotion_invariant.atomic import atomic_path
from emotion_invariant.messages import shorten

METRICS = ("purity", "nmi", "ari")
PROJECTIONS = ("pca", "tsne")


class ClusteringError(ValueError):
    """Embeddings, labels or settings the cluster analysis cannot use."""


class SpeakerClustering(NamedTuple):
    """What :func:`cluster_speakers` found.

    Attributes
    ----------
    ids : list of str
        Per utterance, ``"<speaker>:<c>"``, ``c`` counting from 0 in order
        of first appearance within the speaker, so ids are unique across
        speakers and independent of k-means' arbitrary label order.
    k : dict
        Speaker -> number of clusters used.
    silhouette : dict
        Speaker -> {k: silhouette score} for every k tried (empty where k
        was fixed or the speaker had too few utterances to choose).
    """

    ids: list
    k: dict
    silhouette: dict


def _as_matrix(embeddings, n, what="embeddings"):
    if hasattr(embeddings, "detach"):
        embeddings = embeddings.detach().cpu().numpy()
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ClusteringError(f"{what} must be [N, D], got shape {x.shape}")
    if x.shape[0] != n:
        raise ClusteringError(
            f"{what}: {x.shape[0]} rows for {n} labels; need one per row"
        )
    if not np.isfinite(x).all():
        rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise ClusteringError(
            f"{what}: NaN or inf in row(s) {rows[:5].tolist()}"
        )
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not (norms > 0).all():
        rows = np.flatnonzero(norms[:, 0] == 0)
        raise ClusteringError(
            f"{what}: all-zero row(s) {rows[:5].tolist()} have no direction"
        )
    return x / norms


def _check_k(k, k_range):
    if k is not None:
        if int(k) != k or k < 1:
            raise ClusteringError(f"k must be a positive integer, got {k}")
        return int(k), None
    try:
        low, high = (int(v) for v in k_range)
    except (TypeError, ValueError):
        raise ClusteringError(
            f"k_range must be two integers (low, high), got {k_range!r}"
        ) from None
    if not 2 <= low <= high:
        raise ClusteringError(
            f"k_range must satisfy 2 <= low <= high (silhouette needs two "
            f"clusters), got {k_range!r}"
        )
    return None, (low, high)


def _group(speakers):
    groups = {}
    for index, spk in enumerate(speakers):
        groups.setdefault(spk, []).append(index)
    return {spk: np.array(rows) for spk, rows in groups.items()}


def _first_appearance(labels):
    order = {}
    for label in labels:
        order.setdefault(label, len(order))
    return np.array([order[label] for label in labels])


def _kmeans(x, k, seed, n_init):
    if k == 1:
        return np.zeros(len(x), dtype=int)
    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    return _first_appearance(model.fit_predict(x))


def cluster_speakers(
    embeddings, speakers, k=None, k_range=(2, 6), seed=0, n_init=10
):
    """Cluster each speaker's utterances with k-means.

    Embeddings are L2-normalised first, so Euclidean k-means follows cosine
    similarity, the geometry speaker embeddings are scored in. With ``k``
    unset, each speaker's k is the one in ``k_range`` with the highest
    silhouette score (the smallest on a tie); silhouette needs
    ``2 <= k <= n - 1``, so the range is cut to the speaker's utterance
    count (and to its number of distinct embeddings) and a speaker with
    fewer than three distinct utterances gets one cluster. A fixed ``k``
    is likewise cut to the number of distinct embeddings.

    Arguments
    ---------
    embeddings : array-like
        ``[N, D]`` (numpy array or torch tensor).
    speakers : sequence of str
        Speaker of each row.
    k : int, optional
        Clusters per speaker; ``None`` chooses it by silhouette.
    k_range : tuple of int
        Inclusive ``(low, high)`` range of k to try, ``2 <= low``.
    seed : int
        k-means ``random_state``: the same inputs and seed always give the
        same clusters.
    n_init : int
        k-means restarts per k (the best inertia is kept).

    Returns
    -------
    SpeakerClustering
        ``ids`` (per utterance), ``k`` and ``silhouette`` (per speaker).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> centres = np.eye(4)[[0, 1, 0, 1, 2, 3, 2, 3]]
    >>> emb = centres + 0.05 * rng.normal(size=(8, 4))
    >>> spk = ["a"] * 4 + ["b"] * 4
    >>> found = cluster_speakers(emb, spk, k_range=(2, 3))
    >>> found.ids
    ['a:0', 'a:1', 'a:0', 'a:1', 'b:0', 'b:1', 'b:0', 'b:1']
    >>> found.k
    {'a': 2, 'b': 2}
    """
    speakers = [str(s) for s in speakers]
    if not speakers:
        raise ClusteringError("no utterances to cluster")
    x = _as_matrix(embeddings, len(speakers))
    fixed, bounds = _check_k(k, k_range)
    if int(n_init) != n_init or n_init < 1:
        raise ClusteringError(f"n_init must be a positive integer: {n_init}")
    ids = [None] * len(speakers)
    chosen, silhouettes = {}, {}
    for spk, rows in _group(speakers).items():
        points = x[rows]
        distinct = len(np.unique(points, axis=0))
        scores = {}
        if fixed is not None:
            best = min(fixed, distinct)
            labels = _kmeans(points, best, seed, n_init)
        else:
            best, labels = 1, np.zeros(len(rows), dtype=int)
            high = min(bounds[1], len(rows) - 1, distinct)
            for n_clusters in range(bounds[0], high + 1):
                candidate = _kmeans(points, n_clusters, seed, n_init)
                scores[n_clusters] = float(silhouette_score(points, candidate))
                if scores[n_clusters] > scores.get(best, -np.inf):
                    best, labels = n_clusters, candidate
        chosen[spk], silhouettes[spk] = best, scores
        for row, label in zip(rows, labels):
            ids[row] = f"{spk}:{label}"
    return SpeakerClustering(ids, chosen, silhouettes)


def purity(clusters, labels):
    """Share of utterances whose cluster's majority label is their own.

    Arguments
    ---------
    clusters : sequence
        Cluster of each utterance.
    labels : sequence
        Reference label (emotion) of each utterance.

    Returns
    -------
    float

    Example
    -------
    >>> purity([0, 0, 0, 1, 1], ["ang", "ang", "sad", "sad", "sad"])
    0.8
    """
    table = contingency_matrix(labels, clusters)
    return float(table.max(axis=0).sum() / table.sum())


def _scores(clusters, labels):
    return {
        "purity": purity(clusters, labels),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
    }


def _mean(dicts):
    return {m: float(np.mean([d[m] for d in dicts])) for m in METRICS}


def cluster_report(cluster_ids, speakers, emotions, seed=0, shuffles=20):
    """How closely clusters follow emotion labels, against chance.

    Only utterances with an emotion label count (an empty string is
    unlabelled). Purity, NMI (arithmetic normalisation, scikit-learn's
    default) and ARI are computed per speaker, over all labelled
    utterances pooled (``overall``: cluster ids are per speaker, so a
    cluster never mixes speakers) and as the mean over speakers
    (``macro``). Each comes with ``shuffled``: the same metric with the
    emotions permuted within each speaker, averaged over ``shuffles``
    permutations, which keeps each speaker's cluster sizes and emotion
    counts and so is the score clusters unrelated to emotion would get.

    Arguments
    ---------
    cluster_ids : sequence
        Cluster of each utterance (e.g. :attr:`SpeakerClustering.ids`).
    speakers : sequence of str
        Speaker of each utterance.
    emotions : sequence of str
        Emotion of each utterance, ``""`` where unknown.
    seed : int
        Seed of the permutations.
    shuffles : int
        Permutations averaged in the baseline (>= 1).

    Returns
    -------
    dict
        ``n_utterances``, ``n_labelled``, ``n_speakers``, ``shuffles``,
        ``seed``; ``overall`` and ``macro`` (metrics and ``shuffled``, or
        ``None`` with no label); ``speakers``: speaker -> ``n``,
        ``n_labelled``, ``n_clusters``, ``n_emotions`` and metrics with
        ``shuffled`` (metrics ``None`` for a speaker with no label).

    Example
    -------
    >>> report = cluster_report(
    ...     ["a:0", "a:0", "a:1", "a:1", "b:0", "b:1"],
    ...     ["a", "a", "a", "a", "b", "b"],
    ...     ["ang", "ang", "sad", "sad", "neu", ""])
    >>> report["speakers"]["a"]["nmi"], report["overall"]["purity"]
    (1.0, 1.0)
    >>> report["speakers"]["a"]["shuffled"]["nmi"] < 1.0
    True
    """
    n = len(cluster_ids)
    if len(speakers) != n or len(emotions) != n:
        raise ClusteringError(
            f"{n} cluster ids, {len(speakers)} speakers and {len(emotions)} "
            "emotions: need one of each per utterance"
        )
    if n == 0:
        raise ClusteringError("no utterances to report on")
    if int(shuffles) != shuffles or shuffles < 1:
        raise ClusteringError(
            f"shuffles must be a positive integer: {shuffles}"
        )
    clusters = np.array([str(c) for c in cluster_ids])
    speakers = [str(s) for s in speakers]
    emotions = np.array([str(e) for e in emotions])
    rng = np.random.default_rng(seed)
    groups = _group(speakers)
    labelled = {spk: rows[emotions[rows] != ""] for spk, rows in groups.items()}
    permuted = [emotions.copy() for _ in range(shuffles)]
    for spk in sorted(labelled):
        rows = labelled[spk]
        for draw in permuted:
            draw[rows] = emotions[rng.permutation(rows)]
    per_speaker = {}
    for spk, rows in groups.items():
        own = labelled[spk]
        entry = {
            "n": len(rows),
            "n_labelled": len(own),
            "n_clusters": len(set(clusters[rows])),
            "n_emotions": len(set(emotions[own])),
        }
        if len(own):
            entry.update(_scores(clusters[own], emotions[own]))
            entry["shuffled"] = _mean(
                [_scores(clusters[own], draw[own]) for draw in permuted]
            )
        else:
            entry.update({m: None for m in METRICS}, shuffled=None)
        per_speaker[spk] = entry
    every = np.flatnonzero(emotions != "")
    overall = macro = None
    if len(every):
        overall = _scores(clusters[every], emotions[every])
        overall["shuffled"] = _mean(
            [_scores(clusters[every], draw[every]) for draw in permuted]
        )
        scored = [e for e in per_speaker.values() if e["n_labelled"]]
        macro = _mean(scored)
        macro["shuffled"] = _mean([e["shuffled"] for e in scored])
    return {
        "n_utterances": n,
        "n_labelled": len(every),
        "n_speakers": len(groups),
        "shuffles": int(shuffles),
        "seed": seed,
        "overall": overall,
        "macro": macro,
        "speakers": per_speaker,
    }


def _cell(entry, metric):
    if entry is None or entry[metric] is None:
        return "-"
    return f"{entry[metric]:.3f} ({entry['shuffled'][metric]:.3f})"


def report_markdown(report, title="Emotional clusters in speaker embeddings"):
    """A markdown table of a :func:`cluster_report`.

    Arguments
    ---------
    report : dict
        As returned by :func:`cluster_report`.
    title : str
        Heading.

    Returns
    -------
    str

    Example
    -------
    >>> report = cluster_report(["a:0", "a:1"], ["a", "a"], ["ang", "sad"])
    >>> print(report_markdown(report).splitlines()[-1])
    | a | 2 | 2 | 2 | 1.000 (1.000) | 1.000 (1.000) | 1.000 (1.000) |
    """
    lines = [
        f"# {title}",
        "",
        f"{report['n_utterances']} utterances of {report['n_speakers']} "
        f"speaker(s), {report['n_labelled']} with an emotion label. "
        f"In brackets: the mean over {report['shuffles']} shufflings of "
        "the emotions within each speaker (chance level).",
        "",
        "| speaker | utterances | labelled | clusters | purity | NMI | ARI |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, key in (("**overall**", "overall"), ("**mean**", "macro")):
        lines.append(
            f"| {name} | {report['n_utterances']} | {report['n_labelled']} "
            "| | " + " | ".join(_cell(report[key], m) for m in METRICS) + " |"
        )
    for spk, entry in report["speakers"].items():
        lines.append(
            f"| {spk} | {entry['n']} | {entry['n_labelled']} "
            f"| {entry['n_clusters']} | "
            + " | ".join(_cell(entry, m) for m in METRICS)
            + " |"
        )
    return "\n".join(lines) + "\n"


def project_2d(embeddings, method="pca", seed=0):
    """Project L2-normalised embeddings to two dimensions.

    Arguments
    ---------
    embeddings : array-like
        ``[N, D]``.
    method : str
        ``"pca"`` or ``"tsne"`` (perplexity cut to ``(N - 1) / 3`` for
        small N, as t-SNE needs fewer neighbours than points).
    seed : int
        t-SNE's ``random_state``.

    Returns
    -------
    numpy.ndarray
        ``[N, 2]``; zero columns where the data has fewer dimensions.

    Example
    -------
    >>> project_2d(np.eye(3)).shape
    (3, 2)
    """
    if method not in PROJECTIONS:
        raise ClusteringError(
            f"unknown projection {method!r}; use one of {PROJECTIONS}"
        )
    x = _as_matrix(embeddings, len(embeddings))
    out = np.zeros((len(x), 2))
    if len(x) < 2:
        return out
    if method == "pca":
        n_components = min(2, len(x), x.shape[1])
        out[:, :n_components] = PCA(n_components).fit_transform(x)
    else:
        perplexity = min(30.0, max(1.0, (len(x) - 1) / 3))
        out[:] = TSNE(
            2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(x)
    return out


def _scatter(ax, points, labels, title):
    names = sorted(set(labels), key=lambda v: (v == "", v))
    colours = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    for index, name in enumerate(names):
        mask = np.array([label == name for label in labels])
        ax.scatter(
            points[mask, 0],
            points[mask, 1],
            s=14,
            color="lightgrey" if name == "" else colours(index % colours.N),
            label=name or "unlabelled",
        )
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.2, loc="best")


def plot_speaker(
    embeddings, cluster_ids, emotions, path, title, method="pca", seed=0
):
    """Scatter one speaker's embeddings in 2-D, by cluster and by emotion.

    Two panels over the same projection (:func:`project_2d`): points
    coloured by cluster on the left, by emotion on the right (unlabelled
    in grey). Written as a PNG, atomically.

    Arguments
    ---------
    embeddings : array-like
        ``[N, D]`` embeddings of one speaker.
    cluster_ids : sequence
        Cluster of each row.
    emotions : sequence of str
        Emotion of each row, ``""`` where unknown.
    path : str
        Output PNG.
    title : str
        Figure title.
    method : str
        ``"pca"`` or ``"tsne"``.
    seed : int
        t-SNE's ``random_state``.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "s.png")
    >>> plot_speaker(np.eye(4), ["0", "0", "1", "1"],
    ...              ["ang", "ang", "sad", ""], path, "speaker s")
    >>> open(path, "rb").read(4)
    b'\\x89PNG'
    """
    cluster_ids = [str(c) for c in cluster_ids]
    emotions = [str(e) for e in emotions]
    if len(emotions) != len(cluster_ids):
        raise ClusteringError(
            f"{len(cluster_ids)} cluster ids for {len(emotions)} emotions"
        )
    if not cluster_ids:
        raise ClusteringError(f"{path}: no utterance to plot")
    x = _as_matrix(embeddings, len(cluster_ids))
    points = project_2d(x, method, seed)
    fig = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(fig)
    by_cluster, by_emotion = fig.subplots(1, 2)
    _scatter(by_cluster, points, cluster_ids, "by cluster")
    _scatter(by_emotion, points, emotions, "by emotion")
    fig.suptitle(f"{title} ({method.upper()})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def read_clusters(path, rows):
    """Each row's cluster, from a ``clusters.csv``.

    The file needs ``ID`` and ``cluster`` columns (``spk_id``, when present,
    must agree with the manifest); it may list more utterances than the
    rows. Clusters are per speaker, so the returned ids are qualified by
    the speaker and unique across speakers even when the file numbers each
    speaker's clusters from 0.

    Arguments
    ---------
    path : str
        ``clusters.csv``, as written by
        ``python -m emotion_invariant.clustering``.
    rows : list of dict
        Manifest rows (``ID``, ``spk_id``).

    Returns
    -------
    list of str
        ``"<spk_id>/<cluster>"`` per row, in row order.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "clusters.csv")
    >>> _ = open(path, "w").write("ID,cluster\\nu1,0\\nu2,1\\nu3,0\\n")
    >>> read_clusters(path, [{"ID": "u3", "spk_id": "b"},
    ...                      {"ID": "u1", "spk_id": "a"}])
    ['b/0', 'a/0']
    >>> read_clusters(path, [{"ID": "u9", "spk_id": "a"}])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.clustering.kmeans.ClusteringError: .../clusters.csv: no \
cluster for 1 of 1 manifest row(s): 'u9'
    """
    if not os.path.isfile(path):
        raise ClusteringError(f"clusters file not found: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in ("ID", "cluster") if c not in header]
        if missing:
            raise ClusteringError(
                f"{path}: missing column(s) {', '.join(missing)} in the header"
                f" (found: {','.join(header) or 'nothing'})"
            )
        found = {}
        for line, record in enumerate(reader, start=2):
            uid, label = record.get("ID"), record.get("cluster")
            if not uid or not label:
                raise ClusteringError(
                    f"{path} line {line}: empty ID or cluster"
                )
            if uid in found:
                raise ClusteringError(
                    f"{path} line {line} (ID {uid}): duplicate ID, first on "
                    f"line {found[uid][2]}"
                )
            found[uid] = (record.get("spk_id"), label, line)
    absent = [row["ID"] for row in rows if row["ID"] not in found]
    if absent:
        shown = shorten(map(repr, absent), 10)
        raise ClusteringError(
            f"{path}: no cluster for {len(absent)} of {len(rows)} manifest "
            f"row(s): {shown}"
        )
    ids = []
    for row in rows:
        spk, label, line = found[row["ID"]]
        if spk is not None and spk != row["spk_id"]:
            raise ClusteringError(
                f"{path} line {line} (ID {row['ID']}): speaker {spk!r}, but "
                f"the manifest says {row['spk_id']!r}"
            )
        ids.append(f"{row['spk_id']}/{label}")
    return ids
