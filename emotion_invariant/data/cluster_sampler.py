"""Pair sampling for cluster-guided contrastive pretraining.

The sampling of Ulgen, Du, Busso and Sisman (ICASSP 2024): the per-speaker
clusters of speaker embeddings (:mod:`emotion_invariant.clustering`) act as
pseudo emotion labels, so a positive is another utterance of the anchor's
speaker and cluster and the negatives come from the speaker's other
clusters. Emotion labels are never read, so unlabelled speech can be used.
"""

import numpy as np

from emotion_invariant.seeding import as_rng

MODES = ("cluster", "random_same_speaker")
MULTITASK = ("none", "speaker", "adversary")


class PretrainError(ValueError):
    """Settings, clusters or data the pretraining cannot use."""


def _skip(shifted, positions):
    """Map positions in a pool with some entries removed to pool positions.

    With the removed entries' sorted pool positions ``e_0 < e_1 < ...``
    and ``shifted[t] = e_t - t``, the ``p``-th remaining entry sits at
    ``p + j``, ``j`` the number of ``t`` with ``shifted[t] <= p``.
    """
    return positions + np.searchsorted(shifted, positions, side="right")


class ClusterPairSampler:
    """Positives and negatives for an anchor from per-speaker clusters.

    In ``"cluster"`` mode an utterance's label is its cluster: the positive
    of an anchor is another utterance of its cluster (so of its speaker
    too), the negatives are utterances of the speaker's other clusters,
    and with ``cross_speaker_negatives`` also of every other speaker. In
    ``"random_same_speaker"`` mode, the ablation baseline, the label is the
    speaker: the positive is any other utterance of the speaker whatever
    its cluster, and the negatives come from the other speakers (the only
    utterances left that are not positives).

    Arguments
    ---------
    cluster_ids : sequence
        Cluster of each utterance, unique across speakers (e.g.
        ``cluster_speakers(...).ids``); a cluster may not span speakers.
    speakers : sequence of str
        Speaker of each utterance.
    seed : int
        Seeds the generator used when a method gets no ``rng``.
    cross_speaker_negatives : bool
        In ``"cluster"`` mode, draw negatives from other speakers too.
    mode : str
        ``"cluster"`` or ``"random_same_speaker"``.

    Example
    -------
    >>> sampler = ClusterPairSampler(
    ...     ["a:0", "a:0", "a:1", "a:1", "b:0", "b:0"],
    ...     ["a", "a", "a", "a", "b", "b"])
    >>> sampler.positive(0)
    1
    >>> sorted(sampler.negatives(0, 5))
    [2, 3]
    >>> sampler.labels.tolist()
    [0, 0, 1, 1, 2, 2]
    """

    def __init__(
        self,
        cluster_ids,
        speakers,
        seed=0,
        cross_speaker_negatives=False,
        mode="cluster",
    ):
        if mode not in MODES:
            raise ValueError(
                f"ClusterPairSampler mode must be one of {MODES}, got {mode!r}"
            )
        cluster_ids = [str(c) for c in cluster_ids]
        speakers = [str(s) for s in speakers]
        if len(cluster_ids) != len(speakers):
            raise ValueError(
                f"{len(cluster_ids)} cluster ids for {len(speakers)} speakers;"
                " need one of each per utterance"
            )
        if not cluster_ids:
            raise ValueError("ClusterPairSampler needs at least one utterance")
        owner = {}
        for index, (cluster, spk) in enumerate(zip(cluster_ids, speakers)):
            if owner.setdefault(cluster, spk) != spk:
                raise ValueError(
                    f"cluster {cluster!r} spans speakers {owner[cluster]!r} "
                    f"and {spk!r} (utterance {index}); cluster ids must be "
                    "unique across speakers"
                )
        self.mode = mode
        self.cross_speaker_negatives = (
            cross_speaker_negatives or mode == "random_same_speaker"
        )
        self.rng = as_rng(seed)
        groups = cluster_ids if mode == "cluster" else speakers
        names = list(dict.fromkeys(groups))
        index = {name: i for i, name in enumerate(names)}
        self.label_names = names
        self.labels = np.array([index[g] for g in groups])
        self.speakers = speakers
        self._members = [[] for _ in names]
        for row, label in enumerate(self.labels):
            self._members[label].append(row)
        self._members = [np.array(m) for m in self._members]
        by_speaker = {}
        for row, spk in enumerate(speakers):
            by_speaker.setdefault(spk, []).append(row)
        self._speaker_rows = {s: np.array(r) for s, r in by_speaker.items()}
        # Negatives are drawn by position in the pool (all utterances, or
        # the speaker's) minus the anchor's group, without building a
        # candidate list per call: keep each group's pool positions.
        self._shifted = []
        for members in self._members:
            excluded = members
            if not self.cross_speaker_negatives:
                pool = self._speaker_rows[speakers[members[0]]]
                excluded = np.searchsorted(pool, members)
            self._shifted.append(excluded - np.arange(len(excluded)))

    def __len__(self):
        return len(self.labels)

    def _check(self, i):
        if not 0 <= i < len(self.labels):
            raise IndexError(
                f"utterance index {i} out of range for {len(self.labels)}"
            )
        return int(i)

    def positive(self, i, rng=None):
        """Another utterance with the anchor's label, or the anchor if none.

        Arguments
        ---------
        i : int
            Anchor index.
        rng : None, int, random.Random or numpy.random.Generator
            Generator for the draw (default: the sampler's own).

        Returns
        -------
        int

        Example
        -------
        >>> sampler = ClusterPairSampler(["x", "y", "y"], ["s", "s", "s"])
        >>> sampler.positive(0), sampler.positive(1)
        (0, 2)
        """
        i = self._check(i)
        rng = self.rng if rng is None else as_rng(rng)
        members = self._members[self.labels[i]]
        if len(members) == 1:
            return i
        own = int(np.searchsorted(members, i))
        pick = rng.randrange(len(members) - 1)
        return int(members[pick + (pick >= own)])

    def negatives(self, i, n, rng=None):
        """Up to ``n`` distinct utterances that are not the anchor's label.

        Drawn uniformly without replacement from the anchor's speaker's
        other clusters (and other speakers' utterances when
        ``cross_speaker_negatives`` is on, always in
        ``random_same_speaker`` mode); fewer than ``n`` when fewer exist.

        Arguments
        ---------
        i : int
            Anchor index.
        n : int
            Number wanted (>= 0).
        rng : None, int, random.Random or numpy.random.Generator
            Generator for the draw (default: the sampler's own).

        Returns
        -------
        list of int

        Example
        -------
        >>> sampler = ClusterPairSampler(["x", "y", "z"], ["s", "s", "t"])
        >>> sampler.negatives(0, 3)
        [1]
        """
        i = self._check(i)
        if n < 0:
            raise ValueError(f"number of negatives must be >= 0, got {n}")
        rng = self.rng if rng is None else as_rng(rng)
        label = self.labels[i]
        pool = None
        size = len(self.labels)
        if not self.cross_speaker_negatives:
            pool = self._speaker_rows[self.speakers[i]]
            size = len(pool)
        size -= len(self._members[label])
        positions = rng.sample(range(size), min(int(n), size))
        rows = _skip(self._shifted[label], np.array(positions, dtype=int))
        return (rows if pool is None else pool[rows]).tolist()


def check_settings(hparams, model_sizes=None):
    """Fail early on switches the pretraining cannot combine.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.
    model_sizes : iterable of str, optional
        The size keys the speaker model takes (the recipe passes
        :data:`emotion_invariant.models.embedder.ECAPA_SIZES`); unknown
        keys in ``speaker_model_sizes`` are refused. Not checked when None.

    Example
    -------
    >>> settings = {"positives": "cluster", "multitask": "none",
    ...             "clusters_file": None, "speaker_model": None,
    ...             "speaker_model_sizes": {}, "anchors_per_speaker": 8,
    ...             "cross_speaker_negatives": False}
    >>> check_settings({**settings, "clusters_file": "clusters.csv"})
    >>> try:
    ...     check_settings(settings)
    ... except PretrainError as err:
    ...     print(err)  # doctest: +ELLIPSIS
    positives: cluster needs clusters: set clusters_file (a clusters.csv) ...
    """
    if hparams["positives"] not in MODES:
        raise PretrainError(
            f"positives must be one of {', '.join(MODES)}, got "
            f"{hparams['positives']!r}"
        )
    if hparams["multitask"] not in MULTITASK:
        raise PretrainError(
            f"multitask must be one of {', '.join(MULTITASK)}, got "
            f"{hparams['multitask']!r}"
        )
    given = [k for k in ("clusters_file", "speaker_model") if hparams[k]]
    if len(given) == 2:
        raise PretrainError(
            "give clusters_file or speaker_model, not both: the clusters "
            "would be ambiguous"
        )
    if hparams["positives"] == "cluster" and not given:
        raise PretrainError(
            "positives: cluster needs clusters: set clusters_file (a "
            "clusters.csv) or speaker_model (a local ECAPA folder)"
        )
    unknown = set(hparams["speaker_model_sizes"]) - set(model_sizes or ())
    if model_sizes is not None and unknown:
        raise PretrainError(
            f"speaker_model_sizes: unknown key(s) {', '.join(sorted(unknown))}"
            f"; expected {', '.join(model_sizes)}"
        )
    within = (
        hparams["positives"] == "cluster"
        and not hparams["cross_speaker_negatives"]
    )
    if within and hparams["anchors_per_speaker"] < 2:
        raise PretrainError(
            "anchors_per_speaker must be >= 2 when negatives come from the "
            "anchor's own speaker only (cross_speaker_negatives: false)"
        )
