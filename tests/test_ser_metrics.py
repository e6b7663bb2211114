"""UA, WA, macro-F1 and confusion matrices against scikit-learn's."""

import os
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from emotion_invariant.emotion.metrics import (
    MetricsError,
    classification_report,
    confusion_matrix,
    confusion_text,
    mean_spread,
    metrics_from_confusion,
    plot_confusion,
    pool_confusions,
)


def _sklearn(y_true, y_pred):
    with warnings.catch_warnings():
        # balanced accuracy warns when a predicted class never occurs
        warnings.simplefilter("ignore")
        return {
            "ua": skm.balanced_accuracy_score(y_true, y_pred),
            "wa": skm.accuracy_score(y_true, y_pred),
            "macro_f1": skm.f1_score(
                y_true, y_pred, average="macro", zero_division=0
            ),
        }


@pytest.mark.parametrize("seed", range(6))
def test_random_labels_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 7))
    n = int(rng.integers(5, 300))
    # Skewed classes, and predictions right about half the time.
    y_true = rng.choice(n_classes, n, p=rng.dirichlet(np.ones(n_classes)))
    y_pred = np.where(
        rng.random(n) < 0.5, y_true, rng.integers(0, n_classes, n)
    )
    labels = [f"c{i}" for i in range(n_classes)]
    report = classification_report(y_true, y_pred, labels)
    expected = _sklearn(y_true, y_pred)
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, abs=1e-12), key
    np.testing.assert_array_equal(
        report["confusion"],
        skm.confusion_matrix(y_true, y_pred, labels=range(n_classes)),
    )
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=range(n_classes), zero_division=0
    )
    for i, label in enumerate(labels):
        scores = report["per_class"][label]
        assert scores["precision"] == pytest.approx(precision[i])
        assert scores["recall"] == pytest.approx(recall[i])
        assert scores["f1"] == pytest.approx(f1[i])
        assert scores["support"] == support[i]


def test_absent_classes_follow_sklearn():
    """A class never true, or never true nor predicted, is left out as
    scikit-learn leaves it out."""
    y_true = [0, 0, 1, 1, 1, 0]
    y_pred = [0, 2, 1, 0, 1, 2]  # class 2 predicted, never true; 3 unseen
    report = classification_report(y_true, y_pred, ["a", "b", "c", "d"])
    for key, value in _sklearn(y_true, y_pred).items():
        assert report[key] == pytest.approx(value), key
    assert report["per_class"]["d"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }


def test_pooled_folds_equal_concatenated_predictions():
    rng = np.random.default_rng(0)
    names = ["neu", "hap", "ang", "sad"]
    folds, all_true, all_pred = [], [], []
    for labels in (names, names[:3], ["sad", "neu"]):
        y_true = rng.integers(0, len(labels), 40)
        y_pred = rng.integers(0, len(labels), 40)
        folds.append(classification_report(y_true, y_pred, labels))
        all_true += [labels[i] for i in y_true]
        all_pred += [labels[i] for i in y_pred]
    labels, pooled = pool_confusions(folds)
    assert labels == names
    np.testing.assert_array_equal(
        pooled, skm.confusion_matrix(all_true, all_pred, labels=names)
    )
    metrics = metrics_from_confusion(pooled, labels)
    for key, value in _sklearn(all_true, all_pred).items():
        assert metrics[key] == pytest.approx(value), key


def test_mean_spread_matches_numpy():
    values = [0.61, 0.55, 0.7, float("nan"), 0.58]
    stats = mean_spread(values)
    finite = np.array([0.61, 0.55, 0.7, 0.58])
    assert stats["n"] == 4
    assert stats["mean"] == pytest.approx(finite.mean())
    assert stats["std"] == pytest.approx(finite.std(ddof=1))
    assert (stats["min"], stats["max"]) == (0.55, 0.7)
    assert mean_spread([0.4])["std"] == 0.0
    assert mean_spread([None])["mean"] is None


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [
        ([0, 1], [0], "y_true has 2 labels but y_pred has 1"),
        ([0, 3], [0, 1], r"y_true\[1\] = 3 is not a class index in \[0, 3\)"),
        ([0, 1], [0, -1], r"y_pred\[1\] = -1 is not a class index"),
        ([0.0, 1.0], [0, 1], "integer class indices"),
        ([[0, 1]], [[0, 1]], "1-D"),
        ([], [], "no utterances"),
    ],
)
def test_bad_labels_fail_clearly(y_true, y_pred, message):
    with pytest.raises(MetricsError, match=message):
        confusion_matrix(y_true, y_pred, 3)


def test_bad_confusion_fails_clearly():
    with pytest.raises(MetricsError, match="square"):
        metrics_from_confusion([[1, 2, 3]])
    with pytest.raises(MetricsError, match="2 labels for a 3-class"):
        metrics_from_confusion(np.eye(3), ["a", "b"])
    with pytest.raises(MetricsError, match="empty"):
        metrics_from_confusion(np.zeros((2, 2)))


def test_confusion_text_and_png(tmp_path):
    cm = np.array([[5, 0, 1], [2, 7, 0], [0, 0, 0]])
    labels = ["neu", "ang", "sad"]
    lines = confusion_text(cm, labels).splitlines()
    assert lines[0].split()[1:] == [*labels, "recall"]
    for label, row, line in zip(labels, cm, lines[1:]):
        fields = line.split()
        assert fields[0] == label
        assert [int(x) for x in fields[1:4]] == row.tolist()
    assert lines[1].endswith("83.3%") and lines[3].endswith("-")
    png = tmp_path / "cm.png"
    plot_confusion(cm, labels, str(png), title="demo")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert os.listdir(tmp_path) == ["cm.png"]  # no temporary file left
