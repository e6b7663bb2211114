"""Scoring back-ends against naive references on planted cases."""

import json

import numpy as np
import pytest
import torch
from speechbrain.processing.PLDA_LDA import PLDA as SpeechBrainPLDA
from speechbrain.processing.PLDA_LDA import Ndx, fast_PLDA_scoring

from emotion_invariant.backend import KINDS, BackendError, fit, load_backend
from emotion_invariant.backend.base import unit
from emotion_invariant.backend.plda import stat_object
from emotion_invariant.backend.study import (
    run_study,
    run_transfer,
    write_study,
)


def planted(speakers=30, per=8, dim=12, nuisance_axis=5, scale=0.6, seed=0):
    """Speakers as random centres; each utterance moves along one planted
    nuisance axis by an emotion-dependent amount, plus small noise."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(speakers, 1, dim, generator=g)
    emotions = torch.arange(per) % 4
    shift = (emotions.double() - 1.5)[None, :, None] * scale
    axis = torch.eye(dim, dtype=torch.float64)[nuisance_axis]
    noise = 0.05 * torch.randn(speakers, per, dim, generator=g)
    emb = (centres.double() + shift * axis + noise.double()).reshape(-1, dim)
    spk = [s for s in range(speakers) for _ in range(per)]
    emo = [int(e) for _ in range(speakers) for e in emotions]
    return emb, spk, emo, axis


def groups(spk):
    rows = {}
    for i, s in enumerate(spk):
        rows.setdefault(s, []).append(i)
    return rows


def naive_within(x, spk):
    """Mean of the per-speaker (biased) covariances, loop by loop."""
    x = np.asarray(x, dtype=np.float64)
    covs = [np.cov(x[r].T, bias=True) for r in groups(spk).values()]
    return np.mean(covs, axis=0)


@pytest.mark.parametrize("kind", ["emotion_nap", "within_speaker_nap"])
def test_nap_removes_the_planted_nuisance_direction(kind):
    emb, spk, emo, axis = planted()
    backend = fit(
        kind, emb, spk, emo if kind == "emotion_nap" else None, dims=1
    )
    basis = torch.as_tensor(backend.arrays["basis"]).double()[0]
    assert abs(float(basis @ axis)) > 0.99
    out = backend.transform(emb).double()
    assert out.norm(dim=1).sub(1).abs().max() < 1e-5
    # Nothing is left along the fitted direction, and little along the
    # planted one (the fit sees it through noise).
    assert float((out @ basis).abs().max()) < 1e-6
    before = unit(emb)
    assert (out @ axis).abs().max() < 0.1 * (before @ axis).abs().max()
    # Same-speaker pairs across emotions agree more than before.
    rows = groups(spk)
    a = [r[0] for r in rows.values()]
    b = [r[3] for r in rows.values()]
    assert (out[a] * out[b]).sum(1).mean() > (before[a] * before[b]).sum(
        1
    ).mean()


def test_wccn_whitens_the_within_class_covariance():
    emb, spk, _, _ = planted()
    wccn = fit("wccn", emb, spk)
    projected = wccn.project(unit(emb)).numpy()
    assert np.allclose(naive_within(projected, spk), np.eye(12), atol=1e-8)


def naive_lda(x, spk, dims):
    """Generalised eigenvectors of (Sb, Sw) by numpy: Sw^-1 Sb's leading
    eigenvectors (a non-symmetric eigenproblem, solved with eig)."""
    x = np.asarray(x)
    means = np.stack([x[r].mean(0) for r in groups(spk).values()])
    c = means - x.mean(0)
    sb = c.T @ c
    sw = naive_within(x, spk)
    values, vectors = np.linalg.eig(np.linalg.solve(sw, sb))
    order = np.argsort(-values.real)[:dims]
    return vectors[:, order].real


def fisher(directions, x, spk):
    """Between- over within-speaker variance along each direction."""
    x = np.asarray(x)
    proj = x @ directions
    means = np.stack([proj[r].mean(0) for r in groups(spk).values()])
    between = means.var(0)
    within = np.mean([proj[r].var(0) for r in groups(spk).values()], axis=0)
    return between / within


def test_lda_spans_the_naive_discriminant_subspace():
    emb, spk, _, _ = planted()
    lda = fit("lda", emb, spk, dims=4)
    ours = lda.arrays["map"]
    reference = naive_lda(unit(emb).numpy(), spk, 4)
    # Same subspace: the projection of one basis onto the other is whole.
    q_ours = np.linalg.qr(ours)[0]
    q_ref = np.linalg.qr(reference)[0]
    singular = np.linalg.svd(q_ours.T @ q_ref, compute_uv=False)
    assert singular.min() > 1 - 1e-6
    assert np.all(np.diff(fisher(ours, unit(emb).numpy(), spk)) <= 1e-9)


def test_lda_matches_speechbrain_where_its_eigh_is_valid():
    """SpeechBrain's LDA passes Sw^-1 Sb to eigh, which is right only when
    that matrix is symmetric (Sw a multiple of the identity): there the two
    agree; elsewhere ours has the higher Fisher ratio."""
    g = np.random.default_rng(0)
    dim, speakers = 6, 40
    # Isotropic, equal within-speaker scatter: Sw is c * I up to sampling,
    # so use exactly symmetric offsets (a regular simplex per speaker).
    offsets = np.concatenate([np.eye(dim), -np.eye(dim)]) * 0.1
    centres = g.normal(size=(speakers, dim)) * np.array([3, 1, 1, 0.5, 2, 1])
    x = (centres[:, None] + offsets[None]).reshape(-1, dim)
    spk = [s for s in range(speakers) for _ in range(len(offsets))]
    stat = stat_object(x, [str(s) for s in spk])
    sb_dirs = stat.get_lda_matrix_stat1(2)
    ours = _lda_raw(x, spk, 2)
    cos = np.abs(np.sum(_unit_cols(sb_dirs) * _unit_cols(ours), axis=0))
    assert np.all(cos > 1 - 1e-6)

    emb, spk, _, _ = planted()
    x = unit(emb).numpy()
    sb_dirs = stat_object(x, [str(s) for s in spk]).get_lda_matrix_stat1(1)
    assert fisher(_lda_raw(x, spk, 1), x, spk)[0] >= fisher(sb_dirs, x, spk)[0]


def _unit_cols(m):
    return m / np.linalg.norm(m, axis=0)


def _lda_raw(x, spk, dims):
    from emotion_invariant.backend.projection import lda_directions

    rows = groups(spk)
    return lda_directions(torch.as_tensor(x), rows, dims).numpy()


def test_plda_scores_are_speechbrains():
    emb, spk, _, _ = planted(speakers=40, per=6, dim=8)
    plda = fit("plda", emb, spk, rank=4, iters=5)
    x = unit(emb).numpy()
    reference = SpeechBrainPLDA(rank_f=4, nb_iter=5)
    reference.plda(stat_object(x, [str(s) for s in spk]))
    enrol, test = stat_object(x[:10]), stat_object(x[10:30])
    expected = fast_PLDA_scoring(
        enrol,
        test,
        Ndx(models=enrol.modelset, testsegs=test.segset),
        reference.mean,
        reference.F,
        reference.Sigma,
    ).scoremat
    ours = plda.score_matrix(emb[:10], emb[10:30]).numpy()
    assert np.allclose(ours, expected, rtol=1e-5, atol=1e-4)
    pairs = plda.score_pairs(emb[:10], emb[10:20]).numpy()
    assert np.allclose(pairs, np.diagonal(expected[:, :10]), atol=1e-4)


def test_consistency_projection_finds_the_planted_direction():
    emb, spk, emo, axis = planted(speakers=20)
    for nuisances in (None, emo):
        proj = fit(
            "consistency", emb, spk, nuisances, dims=1, steps=300, seed=2
        )
        basis = torch.as_tensor(proj.arrays["basis"]).double()[0]
        assert abs(float(basis @ axis)) > 0.95
        assert proj.settings["pairs"] == (
            "speaker" if nuisances is None else "emotion"
        )


@pytest.mark.parametrize(
    "kind, settings, message",
    [
        ("lda", {"dims": 5}, "at most speakers - 1 = 2 directions"),
        (
            "wccn",
            {},
            "it needs at least 15 (dimension + speakers), or shrinkage > 0",
        ),
        ("plda", {"rank": 2}, "speaker(s) with two or more"),
        ("within_speaker_nap", {"dims": 9}, "dims 9 must be between 1 and"),
        ("emotion_nap", {"dims": 1}, "needs emotion labels"),
        ("consistency", {"dims": 1}, "no speaker is heard in two emotions"),
    ],
)
def test_too_few_speakers_or_utterances_are_refused(kind, settings, message):
    emb = torch.randn(6, 12)
    spk = [0, 1, 2, 3, 4, 4] if kind == "plda" else [0, 0, 1, 1, 2, 2]
    emotions = ["neu"] * 6 if kind == "consistency" else None
    with pytest.raises(BackendError) as err:
        fit(kind, emb, spk, emotions, **settings)
    assert message in str(err.value)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_saved_backends_load_and_score_the_same(kind, tmp_path):
    emb, spk, emo, _ = planted(speakers=30, per=8, dim=12)
    settings = {
        "emotion_nap": {"dims": 2},
        "within_speaker_nap": {"dims": 2},
        "lda": {"dims": 6},
        "plda": {"rank": 4, "lda_dims": 8, "iters": 3},
        "consistency": {"dims": 2, "steps": 20},
        "chain": {
            "members": [
                ["within_speaker_nap", {"dims": 1}],
                ["lda", {"dims": 4}],
            ]
        },
    }.get(kind, {})
    backend = fit(kind, emb, spk, emo, **settings)
    path = tmp_path / "backend.npz"
    backend.save(path)
    again = load_backend(path)
    assert type(again) is type(backend) and again.settings == backend.settings
    a, b = emb[:20], emb[20:40]
    assert torch.equal(again.score_pairs(a, b), backend.score_pairs(a, b))
    with pytest.raises(BackendError, match="fitted on 12-d"):
        backend.score_pairs(a[:, :6], b[:, :6])


def test_a_file_that_is_not_a_backend_is_named(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(BackendError, match=f"{path}: not a saved back-end"):
        load_backend(path)


def _study_data():
    emb, spk, emo, _ = planted(speakers=12, per=8, dim=12)
    ids = [f"u{i}" for i in range(len(spk))]
    folds = [str(s % 3 + 1) for s in spk]
    names = ["neu", "ang", "sad", "hap"]
    return (ids, emb, spk, [names[e] for e in emo]), folds


STUDY = {
    "zero-shot": {},
    "within-speaker NAP": {
        "kind": "within_speaker_nap",
        "labels": "speaker",
        "grid": {"dims": [1, 2, 4]},
    },
    "LDA": {
        "kind": "lda",
        "labels": "speaker",
        "grid": {"dims": [2, 4]},
        "settings": {"shrinkage": 0.3},
    },
}


def test_study_settings_never_read_the_test_fold():
    """Poison fold 1's embeddings: what was chosen for fold 1 (from the
    other folds' speakers) stays, while its test EER changes."""
    data, folds = _study_data()
    clean = run_study(data, folds, STUDY, progress=False)
    ids, emb, spk, emo = data
    poisoned = emb.clone()
    rows = [i for i, f in enumerate(folds) if f == "1"]
    poisoned[rows] = torch.randn(len(rows), emb.shape[1], dtype=emb.dtype)
    dirty = run_study((ids, poisoned, spk, emo), folds, STUDY, progress=False)
    for name in ("within-speaker NAP", "LDA"):
        assert dirty[name]["1"]["settings"] == clean[name]["1"]["settings"]
        assert dirty[name]["1"]["inner_eer"] == clean[name]["1"]["inner_eer"]
        assert dirty[name]["1"]["eer"] != clean[name]["1"]["eer"]
    # The other folds were fitted on poisoned speakers, so they moved.
    assert any(
        dirty[n]["2"]["inner_eer"] != clean[n]["2"]["inner_eer"]
        for n in ("within-speaker NAP", "LDA")
    )


def test_study_removes_the_planted_nuisance_and_tables_it(tmp_path):
    data, folds = _study_data()
    results = run_study(data, folds, STUDY, progress=False)
    for fold in ("1", "2", "3"):
        nap = results["within-speaker NAP"][fold]
        assert nap["settings"] == {"dims": 1}
        assert nap["eer"]["all"] <= results["zero-shot"][fold]["eer"]["all"]
    write_study(results, tmp_path, STUDY)
    table = (tmp_path / "study.md").read_text().splitlines()
    assert table[0].startswith("| system | needs | all | N-N | N-E |")
    assert table[3].startswith("| within-speaker NAP | speaker labels |")
    assert json.loads((tmp_path / "study.json").read_text()) == results


def test_transfer_fits_on_the_source_corpus_only():
    """Cross-domain: settings and back-ends come from the source corpus;
    the target's embeddings, poisoned or not, change no choice."""
    source, _ = _study_data()
    target, folds = _study_data()
    ids, emb, spk, emo = target
    target = ([f"t{i}" for i in ids], emb + 0.01, [f"t{s}" for s in spk], emo)
    clean = run_transfer(source, target, folds, STUDY)
    poisoned = (target[0], torch.randn_like(emb), target[2], target[3])
    dirty = run_transfer(source, poisoned, folds, STUDY)
    for name in ("within-speaker NAP", "LDA"):
        for fold in ("1", "2", "3"):
            assert (
                dirty[name][fold]["settings"] == clean[name][fold]["settings"]
            )
    nap = clean["within-speaker NAP"]
    assert all(nap[f]["settings"] == {"dims": 1} for f in ("1", "2", "3"))
    assert all(
        nap[f]["eer"]["all"] <= clean["zero-shot"][f]["eer"]["all"]
        for f in ("1", "2", "3")
    )


def _scoring_inputs(tmp_path):
    from emotion_invariant.scoring import save_embeddings

    emb, spk, emo, _ = planted(speakers=20, per=8, dim=12)
    ids = [f"u{i}" for i in range(len(spk))]
    save_embeddings(str(tmp_path / "emb.npz"), ids, emb.float())
    trials = [
        f"{int(spk[a] == spk[b])} {ids[a]} {ids[b]}"
        for a, b in [(0, 1), (0, 9), (8, 15), (16, 40), (3, 77), (50, 52)]
    ]
    (tmp_path / "trials.txt").write_text("\n".join(trials) + "\n")
    return emb, spk, emo, ids


@pytest.mark.parametrize("kind", ["wccn", "plda"])
def test_score_command_gives_the_backends_scores(tmp_path, kind):
    from emotion_invariant.backend.fitting import main

    emb, spk, _, _ = _scoring_inputs(tmp_path)
    settings = {"shrinkage": 0.3} if kind == "wccn" else {"rank": 4}
    backend = fit(kind, emb, spk, **settings)
    backend.save(tmp_path / "b.npz")
    args = ["score", "--backend", str(tmp_path / "b.npz")]
    args += ["--embeddings", str(tmp_path / "emb.npz")]
    args += ["--trials", str(tmp_path / "trials.txt")]
    assert main([*args, "--out", str(tmp_path / "s.txt")]) == 0
    scores = [
        float(line.split()[-1])
        for line in (tmp_path / "s.txt").read_text().splitlines()
    ]
    pairs = [(0, 1), (0, 9), (8, 15), (16, 40), (3, 77), (50, 52)]
    a, b = zip(*pairs)
    expected = backend.score_pairs(emb[list(a)].float(), emb[list(b)].float())
    assert np.allclose(scores, expected.numpy(), atol=1e-4)
    assert main([*args, "--out", str(tmp_path / "emb.npz")]) == 1


def test_score_command_maps_the_cohort(tmp_path, capsys):
    from emotion_invariant.backend.fitting import main
    from emotion_invariant.scoring import read_trials, score_trials

    emb, spk, _, ids = _scoring_inputs(tmp_path)
    backend = fit("within_speaker_nap", emb, spk, dims=1)
    backend.save(tmp_path / "b.npz")
    args = ["score", "--backend", str(tmp_path / "b.npz")]
    args += ["--embeddings", str(tmp_path / "emb.npz")]
    args += ["--trials", str(tmp_path / "trials.txt")]
    args += ["--cohort", str(tmp_path / "emb.npz"), "--norm", "as"]
    assert main([*args, "--topk", "20", "--out", str(tmp_path / "s.txt")]) == 0
    mapped = backend.transform(emb.float())
    expected = score_trials(
        (ids, mapped),
        read_trials(str(tmp_path / "trials.txt")),
        norm="as",
        cohort=(ids, mapped),
        topk=20,
        device="cpu",
    )
    scores = [
        float(line.split()[-1])
        for line in (tmp_path / "s.txt").read_text().splitlines()
    ]
    assert np.allclose(scores, expected.numpy(), atol=1e-5)
    plda = fit("plda", emb, spk, rank=4)
    plda.save(tmp_path / "p.npz")
    args[2] = str(tmp_path / "p.npz")
    assert main([*args, "--out", str(tmp_path / "p.txt")]) == 1
    assert "score normalisation is not applied" in capsys.readouterr().err


def test_chain_is_its_members_in_turn_and_one_affine_map():
    from emotion_invariant.backend.module import affine_form

    emb, spk, emo, axis = planted()
    chain = fit(
        "chain",
        emb,
        spk,
        emo,
        members=[["emotion_nap", {"dims": 1}], ["wccn", {"shrinkage": 0.3}]],
    )
    nap = fit("emotion_nap", emb, spk, emo, dims=1)
    wccn = fit("wccn", nap.project(unit(emb)), spk, shrinkage=0.3)
    expected = torch.nn.functional.normalize(
        wccn.project(nap.project(unit(emb))), dim=-1
    )
    assert torch.allclose(chain.transform(emb).double(), expected, atol=1e-6)
    projection, offset = affine_form(chain)  # exportable in a model folder
    mapped = unit(emb) @ projection + offset
    assert torch.allclose(
        torch.nn.functional.normalize(mapped, dim=-1), expected, atol=1e-6
    )
    with pytest.raises(BackendError, match="'plda' is not a map"):
        fit("chain", emb, spk, members=[["plda", {"rank": 2}]])


EMOTIONS = ["neu", "ang", "sad", "hap"]


def test_fit_command_builds_a_chain(tmp_path):
    from emotion_invariant.backend.fitting import main

    emb, spk, emo, _ = _scoring_inputs(tmp_path)
    with open(tmp_path / "m.csv", "w") as f:
        f.write("ID,duration,wav,spk_id,emo\n")
        for i, (s, e) in enumerate(zip(spk, emo)):
            f.write(f"u{i},1.0,u{i}.wav,s{s},{EMOTIONS[e]}\n")
    members = '[["emotion_nap", {"dims": 1}], ["wccn", {"shrinkage": 0.5}]]'
    argv = ["fit", "--embeddings", str(tmp_path / "emb.npz")]
    argv += ["--manifest", str(tmp_path / "m.csv"), "--kind", "chain"]
    argv += ["--set", f"members={members}", "--out", str(tmp_path / "c.npz")]
    assert main(argv) == 0
    chain = load_backend(tmp_path / "c.npz")
    expected = fit(
        "chain",
        emb.float(),
        [f"s{s}" for s in spk],
        [EMOTIONS[e] for e in emo],
        members=[["emotion_nap", {"dims": 1}], ["wccn", {"shrinkage": 0.5}]],
    )
    assert torch.allclose(chain.transform(emb), expected.transform(emb))


def test_study_fits_on_predicted_labels_and_scores_on_the_true_ones(
    monkeypatch,
):
    """``fit_emotions`` (an emotion model's predictions) is what the
    back-ends are fitted on, in the inner folds that choose the setting as
    in the outer ones; the test trials keep the true labels: renamed labels
    give the same results, and every fit sees only renamed ones."""
    import emotion_invariant.backend.study as study

    data, folds = _study_data()
    emo = data[3]
    spec = {
        "zero-shot": {},
        "emotion NAP": {
            "kind": "emotion_nap",
            "labels": "emotion",
            "grid": {"dims": [1, 2]},
        },
    }
    true = run_study(data, folds, spec, progress=False)
    renamed = {"neu": "a", "ang": "b", "sad": "c", "hap": "d"}
    seen = []
    fit_backend = study.fit

    def spy(kind, embeddings, speakers, nuisances=None, **settings):
        seen.append(set(nuisances))
        return fit_backend(kind, embeddings, speakers, nuisances, **settings)

    monkeypatch.setattr(study, "fit", spy)
    predicted = [renamed[e] for e in emo]
    same = run_study(data, folds, spec, progress=False, fit_emotions=predicted)
    assert same == true
    assert len(seen) == 3 * (2 * 3 + 1)  # folds x (grid x inner folds + 1)
    assert all(labels <= set(renamed.values()) for labels in seen)


def test_every_member_is_registered_by_its_kind():
    """The package's table of members and the registry its members fill
    as they are defined (which a chain reads) are the same."""
    from emotion_invariant.backend import KINDS
    from emotion_invariant.backend.base import REGISTRY

    assert KINDS == REGISTRY
