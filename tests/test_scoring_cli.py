"""The scoring command line: outputs, and clean failures on bad input."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from emotion_invariant.scoring import save_embeddings, score_trials
from emotion_invariant.scoring.score import main


@pytest.fixture
def setup(tmp_path):
    gen = torch.Generator().manual_seed(0)
    ids = [
        f"s{s}_{e}_{i}"
        for s in range(6)
        for e in ("neu", "ang")
        for i in range(3)
    ]
    speaker = torch.tensor([int(u[1]) for u in ids])
    emb = torch.randn(6, 8, generator=gen)[speaker] + 0.7 * torch.randn(
        len(ids), 8, generator=gen
    )
    save_embeddings(str(tmp_path / "emb.npz"), ids, emb)
    save_embeddings(
        str(tmp_path / "cohort.pt"),
        [f"c{i}" for i in range(20)],
        torch.randn(20, 8, generator=gen),
    )
    lines = []
    for a in ids:
        for b in ids:
            if a < b:
                cond = f"{a.split('_')[1]}-{b.split('_')[1]}"
                lines.append(f"{int(a[1] == b[1])} {a} {b} {cond}")
    (tmp_path / "trials.txt").write_text("\n".join(lines) + "\n")
    return tmp_path, ids, emb, lines


def args(folder, *extra, out="scores.txt"):
    return [
        "--embeddings",
        str(folder / "emb.npz"),
        "--trials",
        str(folder / "trials.txt"),
        "--out",
        str(folder / out),
        *extra,
    ]


def test_scores_and_report(setup, capsys):
    folder, ids, emb, lines = setup
    report = folder / "rep" / "report.json"
    code = main(
        args(
            folder,
            "--norm",
            "as",
            "--cohort",
            str(folder / "cohort.pt"),
            "--topk",
            "10",
            "--report",
            str(report),
            "--device",
            "cpu",
        )
    )
    assert code == 0
    written = (folder / "scores.txt").read_text().splitlines()
    assert len(written) == len(lines)
    label, enrol, test, _ = lines[5].split()
    assert written[5].split()[:3] == [enrol, test, label]
    expected = score_trials(
        (ids, emb),
        str(folder / "trials.txt"),
        norm="as",
        cohort=str(folder / "cohort.pt"),
        topk=10,
    )
    got = torch.tensor([float(line.split()[3]) for line in written])
    assert torch.allclose(got, expected, atol=1e-6)
    data = json.loads(report.read_text())
    assert list(data["conditions"])[:3] == ["N-N", "N-E", "E-E same"]
    assert (folder / "rep" / "report.md").exists()
    assert (folder / "rep" / "report_det.png").exists()
    assert "EER" in capsys.readouterr().out


def test_skip_missing_counts(setup, capsys):
    folder, *_ = setup
    with open(folder / "trials.txt", "a") as f:
        f.write("0 s0_neu_0 ghost neu-neu\n1 ghost s0_neu_0 neu-neu\n")
    assert main(args(folder)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "2 trial(s) name 1 id(s)" in err
    assert "'ghost'" in err and "Traceback" not in err
    assert not (folder / "scores.txt").exists()
    assert main(args(folder, "--skip-missing")) == 0
    assert "skipped 2 trials" in capsys.readouterr().out
    assert "ghost" not in (folder / "scores.txt").read_text()


def bad_label(folder):
    (folder / "trials.txt").write_text(
        "1 s0_neu_0 s0_neu_1\n5 s0_neu_0 s1_neu_1\n"
    )


def empty_list(folder):
    (folder / "trials.txt").write_text("")


def zero_embedding(folder):
    np.savez(
        folder / "emb.npz",
        ids=np.array(["s0_neu_0", "s0_neu_1"]),
        embeddings=np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32),
    )


def duplicate_ids(folder):
    np.savez(
        folder / "emb.npz",
        ids=np.array(["s0_neu_0", "s0_neu_0"]),
        embeddings=np.ones((2, 3), dtype=np.float32),
    )


@pytest.mark.parametrize(
    "breaker, extra, message",
    [
        (bad_label, [], "line 2: label '5' is not 0 or 1"),
        (empty_list, [], "the trial list is empty"),
        (zero_embedding, [], "all-zero embedding.*'s0_neu_0'"),
        (duplicate_ids, [], "duplicate id.*'s0_neu_0'"),
        (
            None,
            ["--norm", "as", "--topk", "50"],
            r"topk \(50\) <= cohort size \(20\)",
        ),
        (None, ["--norm", "z"], "needs a cohort"),
    ],
)
def test_bad_input_fails_cleanly(setup, capsys, breaker, extra, message):
    folder, *_ = setup
    if breaker is not None:
        breaker(folder)
    if "--topk" in extra:
        extra = [*extra, "--cohort", str(folder / "cohort.pt")]
    assert main(args(folder, *extra, "--report", str(folder / "r.json"))) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert re.search(message, err), err
    assert not (folder / "scores.txt").exists()
    assert not (folder / "r.json").exists()


def test_nan_embeddings_via_module_entry_point(setup):
    folder, *_ = setup
    torch.save(
        {
            "ids": ["s0_neu_0", "s0_neu_1"],
            "embeddings": torch.tensor([[float("nan"), 1.0], [1.0, 1.0]]),
        },
        folder / "nan.pt",
    )
    cmd = [
        sys.executable,
        "-m",
        "emotion_invariant.scoring",
        "--embeddings",
        str(folder / "nan.pt"),
        "--trials",
        str(folder / "trials.txt"),
        "--out",
        str(folder / "s.txt"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 1
    assert "NaN or inf values: 's0_neu_0'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (folder / "s.txt").exists()
