"""Emotional clusters in speaker embeddings (Ulgen et al., ICASSP 2024).

:mod:`~emotion_invariant.clustering.kmeans` holds the method (per-speaker
k-means, purity, NMI and ARI against shuffled emotions, cluster files);
:mod:`~emotion_invariant.clustering.analysis` runs it on a manifest and is
the ``python -m emotion_invariant.clustering`` command line.
"""

from emotion_invariant.clustering.kmeans import (
    METRICS,
    PROJECTIONS,
    ClusteringError,
    SpeakerClustering,
    cluster_report,
    cluster_speakers,
    plot_speaker,
    project_2d,
    purity,
    read_clusters,
    report_markdown,
)

__all__ = [
    "METRICS",
    "PROJECTIONS",
    "ClusteringError",
    "SpeakerClustering",
    "cluster_report",
    "cluster_speakers",
    "plot_speaker",
    "project_2d",
    "purity",
    "read_clusters",
    "report_markdown",
]
