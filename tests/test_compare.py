"""The per-condition comparison of speaker-verification systems."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compare():
    path = os.path.join(ROOT, "recipes", "speaker_verification", "compare.py")
    spec = importlib.util.spec_from_file_location("sv_compare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
