"""Speech emotion recognition metrics: UA, WA, macro-F1, confusion matrix.

The measures every speaker-independent emotion benchmark reports:
unweighted accuracy (UA, the mean per-class recall, i.e. balanced accuracy),
weighted accuracy (WA, plain accuracy) and macro-F1, all computed from one
confusion matrix, so that folds can be pooled by summing their matrices.
They agree with scikit-learn's ``balanced_accuracy_score``,
``accuracy_score``, ``f1_score(average="macro")`` and ``confusion_matrix``.
"""

import math
import statistics

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emotion_invariant.atomic import atomic_path


class MetricsError(ValueError):
    """Labels or predictions that cannot be scored."""


def _as_labels(values, name, n_classes):
    array = np.asarray(values)
    if array.ndim != 1:
        raise MetricsError(
            f"{name} must be one label per utterance (1-D), got shape "
            f"{array.shape}"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise MetricsError(
            f"{name} must hold integer class indices, got {array.dtype}"
        )
    bad = (array < 0) | (array >= n_classes)
    if bad.any():
        raise MetricsError(
            f"{name}[{int(np.argmax(bad))}] = {array[bad][0]} is not a class "
            f"index in [0, {n_classes})"
        )
    return array.astype(np.int64)


def confusion_matrix(y_true, y_pred, n_classes):
    """Counts of (true class, predicted class) pairs.

    Arguments
    ---------
    y_true, y_pred : array-like of int
        Class indices in ``[0, n_classes)``, one per utterance.
    n_classes : int
        Number of classes.

    Returns
    -------
    numpy.ndarray
        int64 ``[n_classes, n_classes]``; row ``i`` counts the utterances
        of class ``i`` by predicted class.

    Example
    -------
    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3)
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 0, 1]])
    """
    if n_classes < 1:
        raise MetricsError(f"n_classes must be at least 1, got {n_classes}")
    y_true = _as_labels(y_true, "y_true", n_classes)
    y_pred = _as_labels(y_pred, "y_pred", n_classes)
    if y_true.shape != y_pred.shape:
        raise MetricsError(
            f"y_true has {y_true.size} labels but y_pred has {y_pred.size}"
        )
    if not y_true.size:
        raise MetricsError("no utterances to score")
    counts = np.bincount(
        y_true * n_classes + y_pred, minlength=n_classes * n_classes
    )
    return counts.reshape(n_classes, n_classes)


def metrics_from_confusion(confusion, labels=None):
    """UA, WA, macro-F1 and per-class scores of a confusion matrix.

    UA averages recall over the classes that occur (support > 0); macro-F1
    averages F1 over the classes that occur or are predicted, as
    scikit-learn does by default.

    Arguments
    ---------
    confusion : array-like
        ``[C, C]`` counts, rows true classes, columns predictions.
    labels : list of str, optional
        Class names (default ``"0" ... "C-1"``).

    Returns
    -------
    dict
        ``ua``, ``wa``, ``macro_f1``, ``n`` (utterances) and ``per_class``
        (label -> ``precision``, ``recall``, ``f1``, ``support``; a score
        without a denominator is 0).

    Example
    -------
    >>> m = metrics_from_confusion([[3, 1], [0, 1]], ["neu", "ang"])
    >>> m["wa"], m["ua"], round(m["macro_f1"], 4)
    (0.8, 0.875, 0.7619)
    >>> m["per_class"]["ang"]["precision"]
    0.5
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise MetricsError(
            f"a confusion matrix must be square, got shape {confusion.shape}"
        )
    n_classes = confusion.shape[0]
    labels = (
        list(labels) if labels is not None else list(map(str, range(n_classes)))
    )
    if len(labels) != n_classes:
        raise MetricsError(
            f"{len(labels)} labels for a {n_classes}-class confusion matrix"
        )
    if (confusion < 0).any():
        raise MetricsError("a confusion matrix cannot hold negative counts")
    total = int(confusion.sum())
    if not total:
        raise MetricsError("the confusion matrix is empty: nothing to score")
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    recall = ratio(tp, support)
    precision = ratio(tp, predicted)
    f1 = ratio(2 * tp, support + predicted)
    present = support > 0
    scored = present | (predicted > 0)
    return {
        "ua": float(recall[present].mean()),
        "wa": float(tp.sum() / total),
        "macro_f1": float(f1[scored].mean()),
        "n": total,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }


def classification_report(y_true, y_pred, labels):
    """Metrics and confusion matrix of predicted class indices.

    Arguments
    ---------
    y_true, y_pred : array-like of int
        Class indices into ``labels``.
    labels : list of str
        Class names.

    Returns
    -------
    dict
        :func:`metrics_from_confusion`'s keys plus ``labels`` and
        ``confusion`` (a list of rows).

    Example
    -------
    >>> r = classification_report([0, 1, 1], [0, 1, 0], ["neu", "sad"])
    >>> r["ua"], r["confusion"]
    (0.75, [[1, 0], [1, 1]])
    """
    confusion = confusion_matrix(y_true, y_pred, len(labels))
    report = metrics_from_confusion(confusion, labels)
    report["labels"] = list(labels)
    report["confusion"] = confusion.tolist()
    return report


def pool_confusions(reports):
    """Sum the confusion matrices of several reports over their labels.

    Folds may lack a class (no training or test utterance of it), so the
    matrices are aligned by label name before summing.

    Arguments
    ---------
    reports : list of dict
        Each with ``labels`` and ``confusion`` (see
        :func:`classification_report`).

    Returns
    -------
    tuple
        ``(labels, confusion)``: the union of labels in first-seen order
        and the summed ``numpy.ndarray``.

    Example
    -------
    >>> a = {"labels": ["neu", "ang"], "confusion": [[2, 0], [1, 1]]}
    >>> b = {"labels": ["neu", "sad"], "confusion": [[1, 1], [0, 3]]}
    >>> labels, cm = pool_confusions([a, b])
    >>> labels
    ['neu', 'ang', 'sad']
    >>> cm
    array([[3, 0, 1],
           [1, 1, 0],
           [0, 0, 3]])
    """
    if not reports:
        raise MetricsError("no reports to pool")
    labels = []
    for report in reports:
        labels.extend(x for x in report["labels"] if x not in labels)
    index = {label: i for i, label in enumerate(labels)}
    pooled = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for report in reports:
        where = np.array([index[x] for x in report["labels"]])
        pooled[np.ix_(where, where)] += np.asarray(report["confusion"])
    return labels, pooled


def mean_spread(values):
    """Mean, sample standard deviation, minimum and maximum of scores.

    Arguments
    ---------
    values : list of float
        One score per fold or seed (NaN and ``None`` are left out).

    Returns
    -------
    dict
        ``mean``, ``std`` (0 for a single value), ``min``, ``max``, ``n``;
        ``None`` (valid JSON) for each statistic when no value is left.

    Example
    -------
    >>> mean_spread([0.5, 1.0, 0.75])
    {'mean': 0.75, 'std': 0.25, 'min': 0.5, 'max': 1.0, 'n': 3}
    """
    values = [float(v) for v in values if v is not None]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "mean": statistics.fmean(values),
        "std": std,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def confusion_text(confusion, labels):
    """A plain-text confusion matrix with each class's recall.

    Arguments
    ---------
    confusion : array-like
        ``[C, C]`` counts, rows true classes.
    labels : list of str
        Class names.

    Returns
    -------
    str

    Example
    -------
    >>> print(confusion_text([[3, 1], [0, 2]], ["neu", "ang"]), end="")
    true\\pred  neu  ang  recall
    neu          3    1   75.0%
    ang          0    2  100.0%
    """
    confusion = np.asarray(confusion)
    corner = "true\\pred"
    width = max(5, len(str(confusion.max())) + 1, *(len(x) + 1 for x in labels))
    first = max(len(corner), *(len(x) for x in labels))
    cells = "".join(f"{x:>{width}}" for x in labels)
    lines = [f"{corner:{first}s}{cells}  recall"]
    for i, (label, row) in enumerate(zip(labels, confusion)):
        support = row.sum()
        recall = f"{100 * row[i] / support:6.1f}%" if support else "      -"
        cells = "".join(f"{int(v):>{width}}" for v in row)
        lines.append(f"{label:{first}s}{cells} {recall}")
    return "\n".join(lines) + "\n"


def plot_confusion(confusion, labels, path, title=None):
    """Save a confusion matrix as a PNG: row-normalised colour, counts.

    Arguments
    ---------
    confusion : array-like
        ``[C, C]`` counts, rows true classes.
    labels : list of str
        Class names.
    path : str
        Output PNG, written atomically.
    title : str, optional
        Figure title.

    Example
    -------
    >>> import os, tempfile
    >>> png = os.path.join(tempfile.mkdtemp(), "cm.png")
    >>> plot_confusion([[3, 1], [0, 2]], ["neu", "ang"], png)
    >>> open(png, "rb").read(4)
    b'\\x89PNG'
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    support = confusion.sum(axis=1, keepdims=True)
    rates = np.divide(
        confusion, support, out=np.zeros_like(confusion), where=support > 0
    )
    size = 1.5 + 0.6 * len(labels)
    fig = Figure(figsize=(size + 0.8, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{int(confusion[i, j])}",
                ha="center",
                va="center",
                color="white" if rates[i, j] > 0.5 else "black",
                fontsize=8,
            )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
