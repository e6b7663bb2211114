"""The per-condition comparison of speaker-verification systems."""

import json

from recipe_scripts import load_recipe


def _compare():
    return load_recipe("speaker_verification", "compare")


def _run(folder, eers):
    (folder / "eval").mkdir(parents=True)
    conditions = {c: {"eer": e, "min_dcf": 2 * e} for c, e in eers.items()}
    report = {"overall": {"eer": 0.1, "min_dcf": 0.2}, "conditions": conditions}
    (folder / "eval" / "report.json").write_text(json.dumps(report))
    return str(folder)


def test_relative_change_and_ratio(tmp_path, capsys):
    base = [
        _run(tmp_path / f"b{i}", {"N-N": 0.04, "N-E": e})
        for i, e in enumerate((0.10, 0.12))
    ]
    new = [_run(tmp_path / "n1", {"N-N": 0.04, "N-E": 0.088})]
    out = tmp_path / "cmp.md"
    code = _compare().main(
        ["--out", str(out), "base=" + ",".join(base), "new=" + new[0]]
    )
    assert code == 0
    text = out.read_text()
    assert "| base | 2 | 10.00 ± 0.00 | 4.00 ± 0.00 | 11.00 ± 1.41 |" in text
    assert "8.80 ± 0.00 (-20.0%)" in text
    assert "N-E EER / N-N EER = 2.75" in text
    assert text in capsys.readouterr().out


def test_missing_report_is_an_error(tmp_path, capsys):
    assert _compare().main([f"a={tmp_path}"]) == 1
    assert "no evaluation report" in capsys.readouterr().err


def _scored(folder, trials, eers):
    """A run scored on ``trials`` (a trial-list file) with these EERs."""
    run = _run(folder, eers)
    report_path = folder / "eval" / "report.json"
    report = json.loads(report_path.read_text())
    report["trials"] = str(trials)
    report_path.write_text(json.dumps(report))
    return run


def test_paired_differences_match_the_same_trials(tmp_path, capsys):
    fold1, fold2 = tmp_path / "t1.txt", tmp_path / "t2.txt"
    fold1.write_text("1 a b\n")
    fold2.write_text("0 c d\n")
    # The reference's folds differ by 10 points; each system run is
    # compared with the reference run on its own fold's trials.
    ref = [
        _scored(tmp_path / "z1", fold1, {"N-E": 0.20}),
        _scored(tmp_path / "z2", fold2, {"N-E": 0.10}),
    ]
    runs = [
        _scored(tmp_path / "s1", fold2, {"N-E": 0.09}),
        _scored(tmp_path / "s2", fold1, {"N-E": 0.17}),
        _scored(tmp_path / "s3", fold1, {"N-E": 0.21}),
    ]
    diffs = [100 * (0.09 - 0.10), 100 * (0.17 - 0.20), 100 * (0.21 - 0.20)]
    mean = sum(diffs) / 3
    std = (sum((d - mean) ** 2 for d in diffs) / 2) ** 0.5
    code = _compare().main(["ref=" + ",".join(ref), "sys=" + ",".join(runs)])
    assert code == 0
    text = capsys.readouterr().out
    paired = text.split("Paired on the same trials")[1]
    assert (
        f"| sys | 3 | +0.00 ± 0.00 (0/3) | {mean:+.2f} ± {std:.2f} (2/3) |"
        in (paired)
    )


def test_unpaired_runs_are_named(tmp_path, capsys):
    fold1, fold2 = tmp_path / "t1.txt", tmp_path / "t2.txt"
    fold1.write_text("1 a b\n")
    fold2.write_text("0 c d\n")
    ref = _scored(tmp_path / "z1", fold1, {"N-E": 0.20})
    other = _scored(tmp_path / "s1", fold2, {"N-E": 0.10})
    assert _compare().main([f"ref={ref}", f"sys={other}"]) == 0
    text = capsys.readouterr().out
    assert "Paired on the same trials" not in text
    assert (
        f"No paired table: {other}: no ref run scored on the same trials."
        in (text)
    )


def test_seeds_on_the_same_trials_pair_in_order(tmp_path, capsys):
    trials = tmp_path / "t.txt"
    trials.write_text("1 a b\n")
    ref = [
        _scored(tmp_path / f"r{seed}", trials, {"N-E": e})
        for seed, e in ((1, 0.20), (2, 0.10))
    ]
    new = [
        _scored(tmp_path / f"n{seed}", trials, {"N-E": e})
        for seed, e in ((1, 0.19), (2, 0.09))
    ]
    assert (
        _compare().main(["ref=" + ",".join(ref), "new=" + ",".join(new)]) == 0
    )
    paired = capsys.readouterr().out.split("Paired on the same trials")[1]
    # Seed k against seed k: -1 point both times, never -11 or +9.
    assert "| new | 2 | +0.00 ± 0.00 (0/2) | -1.00 ± 0.00 (2/2) |" in paired
    extra = _scored(tmp_path / "n3", trials, {"N-E": 0.1})
    assert (
        _compare().main(
            ["ref=" + ",".join(ref), f"new={new[0]},{new[1]},{extra}"]
        )
        == 0
    )
    assert (
        "has more runs on these trials than ref (2)" in capsys.readouterr().out
    )
