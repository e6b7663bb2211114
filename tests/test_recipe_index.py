"""The recipe index in SpeechBrain's own format (tests/recipes/*.csv): every
listed file exists, and every recipe runs in --debug and writes what its
row says."""

import csv
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INDEX = os.path.join(ROOT, "tests", "recipes", "EmotionInvariant.csv")
COLUMNS = [
    "Task",
    "Dataset",
    "Script_file",
    "Hparam_file",
    "Data_prep_file",
    "Readme_file",
    "Result_url",
    "HF_repo",
    "test_debug_flags",
    "test_debug_checks",
    "performance",
]


def _rows():
    with open(INDEX, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_every_listed_file_exists():
    rows = _rows()
    assert rows
    for row in rows:
        for key in ("Script_file", "Hparam_file", "Data_prep_file"):
            assert os.path.isfile(os.path.join(ROOT, row[key])), row[key]
        assert os.path.isfile(os.path.join(ROOT, row["Readme_file"]))
    listed = {(r["Script_file"], r["Hparam_file"]) for r in rows}
    assert len(listed) == len(rows), "a recipe is listed twice"


def _checks(text):
    match = re.fullmatch(r"file_exists=\[(.*)\]", text.strip())
    assert match, f"unknown check {text!r}"
    return [name.strip() for name in match.group(1).split(",")]


@pytest.mark.parametrize(
    "row", _rows(), ids=lambda r: os.path.basename(r["Hparam_file"])
)
def test_recipe_runs_in_debug(row, tiny_corpus, tmp_path):
    flags = row["test_debug_flags"].replace("$TINY_CORPUS", str(tiny_corpus))
    out = tmp_path / "run"
    argv = [sys.executable, row["Script_file"], row["Hparam_file"]]
    argv += shlex.split(flags) + [f"--output_folder={out}"]
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in _checks(row["test_debug_checks"]):
        assert (out / name).is_file(), name
