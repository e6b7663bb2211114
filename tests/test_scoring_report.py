"""Per-condition reports: grouping, order, values and the files written."""

import json

import numpy as np
import pytest
import torch

from emotion_invariant.data.manifest import ManifestError
from emotion_invariant.scoring import (
    Trials,
    condition_masks,
    verification_metrics,
    verification_report,
)

CONDITIONS = ["neu-neu", "neu-ang", "neu-sad", "ang-ang", "ang-sad", "sad-neu"]


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    records, scores = [], []
    for i in range(1200):
        condition = CONDITIONS[i % len(CONDITIONS)]
        label = int(rng.random() < 0.4)
        records.append((label, f"e{i % 50}", f"t{i % 70}", condition))
        shift = 1.5 if condition == "neu-neu" else 0.8
        scores.append(rng.normal() + shift * label)
    return Trials.from_records(records, "trials.txt"), torch.tensor(scores)


def subset_metrics(trials, scores, conditions, threshold):
    mask = np.isin(np.array(trials.conditions)[trials.condition], conditions)
    return verification_metrics(
        scores[torch.from_numpy(mask)],
        trials.labels[mask],
        threshold=threshold,
    )


def test_groups_follow_condition_groups_in_report_order(scored):
    from emotion_invariant.data.trials import condition_groups

    trials, _ = scored
    masks = condition_masks(trials)
    names = list(masks)
    assert names[:5] == ["all", "N-N", "N-E", "E-E same", "E-E cross"]
    assert names[-len(CONDITIONS) :] == CONDITIONS
    groups = {g for c in CONDITIONS for g in condition_groups(c)}
    assert set(names) == {"all", *CONDITIONS, *groups}
    conditions = np.array(trials.conditions)[trials.condition]
    for name in names[1:]:
        members = [c for c in CONDITIONS if name in (c, *condition_groups(c))]
        assert np.array_equal(masks[name], np.isin(conditions, members)), name
    assert masks["all"].all()


def test_groups_without_a_condition_column():
    plain = Trials.from_records([(1, "a", "b"), (0, "a", "c")])
    assert list(condition_masks(plain)) == ["all"]


def test_malformed_condition_names_the_trial_list():
    trials = Trials.from_records([(1, "a", "b", "neutral")], "list.txt")
    with pytest.raises(ManifestError, match="list.txt: condition 'neutral'"):
        condition_masks(trials)


def test_report_values_and_files(scored, tmp_path):
    trials, scores = scored
    out = tmp_path / "out" / "report.json"
    report = verification_report(trials, scores, str(out), title="demo")
    on_disk = json.loads(out.read_text())
    assert on_disk["overall"] == pytest.approx(report["overall"])
    assert list(on_disk["conditions"]) == list(report["conditions"])
    threshold = report["overall"]["min_dcf_threshold"]
    assert report["act_dcf_threshold"] == threshold
    assert report["overall"] == pytest.approx(
        subset_metrics(trials, scores, CONDITIONS, None)
    )
    for name, members in {
        "N-E": ["neu-ang", "neu-sad"],
        "E-E cross": ["ang-sad"],
        "neu-sad": ["neu-sad"],
    }.items():
        expected = subset_metrics(trials, scores, members, threshold)
        assert report["conditions"][name] == pytest.approx(expected)
    # the easier neutral condition shows up as such
    assert (
        report["conditions"]["N-N"]["eer"] < report["conditions"]["N-E"]["eer"]
    )
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert markdown.startswith("# demo")
    n_e = report["conditions"]["N-E"]
    assert (
        f"| N-E | {n_e['n_target']} | {n_e['n_nontarget']} | "
        f"{100 * n_e['eer']:.2f} | {n_e['min_dcf']:.4f} |"
    ) in markdown
    rows = [line.split("|")[1].strip() for line in markdown.splitlines()[6:]]
    assert rows == ["all", *report["conditions"]]
    png = (tmp_path / "out" / "report_det.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    det = on_disk["det"]["N-N"]
    assert det["p_fa"][0] == 1.0 and det["p_miss"][-1] == 1.0


def test_one_class_condition_is_reported_as_missing(tmp_path):
    trials = Trials.from_records(
        [
            (1, "a", "b", "neu-neu"),
            (0, "a", "c", "neu-neu"),
            (1, "a", "d", "neu-ang"),
        ]
    )
    report = verification_report(
        trials, [0.9, 0.1, 0.5], str(tmp_path / "r.json")
    )
    assert report["conditions"]["N-E"]["eer"] is None
    assert report["conditions"]["N-E"]["n_target"] == 1
    assert "| N-E | 1 | 0 | n/a |" in (tmp_path / "r.md").read_text()


def test_report_refuses_one_class_list_and_writes_nothing(tmp_path):
    trials = Trials.from_records([(1, "a", "b"), (1, "a", "c")])
    with pytest.raises(ValueError, match="need target and non-target"):
        verification_report(trials, [0.9, 0.1], str(tmp_path / "r.json"))
    assert list(tmp_path.iterdir()) == []
