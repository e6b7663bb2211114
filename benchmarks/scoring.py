"""Speed and agreement of verification scoring against SpeechBrain's way.

Prints each figure with its ratio to a reference measured in the same run:
  1. EER / minDCF agreement with ``speechbrain.utils.metric_stats`` and
     scikit-learn's ROC on random and tied score sets;
  2. cosine scoring of a trial list vs a per-trial loop written the way
     SpeechBrain's ``speaker_verification_cosine.py`` does it (the loop runs
     on a subset and is extrapolated linearly);
  3. EER + minDCF on many scores (time and peak RAM, in a child process)
     vs SpeechBrain's ``EER`` and ``minDCF`` at equal sizes they can run at;
  4. adaptive s-norm vs the recipe's per-trial cohort statistics (a subset,
     extrapolated).

The default run takes about a minute or two on 2 CPU cores; every size is an
option (``--help``).
"""

import argparse
import io
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from emotion_invariant.scoring import (
    EER,
    Trials,
    eer,
    min_dcf,
    minDCF,
    score_trials,
    verification_metrics,
)


def timed(fn, repeats=1):
    """Best wall time of ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def score_set(n, generator, tied=False):
    """Target-shifted Gaussian scores, 10 % targets; optionally rounded."""
    labels = torch.rand(n, generator=generator) < 0.1
    scores = torch.randn(n, generator=generator) + 2.5 * labels
    if tied:
        scores = torch.round(scores * 10) / 10
    return scores, labels


def sklearn_eer(scores, labels):
    """EER from scikit-learn's ROC, the usual ``|FNR - FPR|`` minimiser."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(
        labels.numpy(), scores.numpy(), drop_intermediate=False
    )
    fnr = 1 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    return (fpr[i] + fnr[i]) / 2


def check_agreement(seed):
    """Largest differences to SpeechBrain and scikit-learn over 6 sets."""
    from speechbrain.utils import metric_stats as sb

    gen = torch.Generator().manual_seed(seed)
    worst = {"eer": 0.0, "min_dcf": 0.0, "sklearn": 0.0, "thresholds": 0}
    for tied in (False, True) * 3:
        scores, labels = score_set(3000, gen, tied)
        pos, neg = scores[labels], scores[~labels]
        ours_eer, ours_eer_t = EER(pos, neg)
        ours_dcf, ours_dcf_t = minDCF(pos, neg)
        sb_eer, sb_eer_t = sb.EER(pos, neg)
        sb_dcf, sb_dcf_t = sb.minDCF(pos, neg)
        worst["eer"] = max(worst["eer"], abs(ours_eer - sb_eer))
        worst["min_dcf"] = max(worst["min_dcf"], abs(ours_dcf - sb_dcf))
        worst["sklearn"] = max(
            worst["sklearn"], abs(ours_eer - sklearn_eer(scores, labels))
        )
        worst["thresholds"] += (ours_eer_t != sb_eer_t) + (
            ours_dcf_t != sb_dcf_t
        )
    return worst


def embeddings_and_trials(n_utt, dim, n_trials, seed):
    """Speaker-structured embeddings and a random trial list over them."""
    gen = torch.Generator().manual_seed(seed)
    n_spk = max(2, n_utt // 10)
    speaker = torch.arange(n_utt) % n_spk
    centres = torch.randn(n_spk, dim, generator=gen)
    # noise well above the speaker spread, for an EER of a few percent
    emb = centres[speaker] + 1.8 * torch.randn(n_utt, dim, generator=gen)
    enrol = torch.randint(0, n_utt, (n_trials,), generator=gen)
    test = torch.randint(0, n_utt, (n_trials,), generator=gen)
    # a third of the trials are same-speaker
    same = torch.rand(n_trials, generator=gen) < 1 / 3
    offset = torch.randint(1, 10, (n_trials,), generator=gen) * n_spk
    test = torch.where(same, (enrol + offset) % n_utt, test)
    labels = (speaker[enrol] == speaker[test]).numpy()
    ids = [f"utt{i:06d}" for i in range(n_utt)]
    trials = Trials(labels, enrol.numpy(), test.numpy(), ids)
    return ids, emb, trials


def sb_style_loop(ids, emb, trials, count, cohort=None, topk=None):
    """Score ``count`` trials one at a time as SpeechBrain's recipe does."""
    embedding_dict = {u: emb[i].unsqueeze(0) for i, u in enumerate(ids)}
    lines = [
        " ".join(map(str, r)) for r, _ in zip(trials.records(), range(count))
    ]
    similarity = torch.nn.CosineSimilarity(dim=-1, eps=1e-6)
    out = io.StringIO()
    positive, negative = [], []
    for line in lines:
        label = int(line.split(" ")[0].rstrip().split(".")[0].strip())
        enrol_id = line.split(" ")[1].rstrip().split(".")[0].strip()
        test_id = line.split(" ")[2].rstrip().split(".")[0].strip()
        enrol = embedding_dict[enrol_id]
        test = embedding_dict[test_id]
        if cohort is not None:
            score_e_c = similarity(enrol.repeat(cohort.shape[0], 1, 1), cohort)
            score_e_c = torch.topk(score_e_c, k=topk, dim=0)[0]
            mean_e_c, std_e_c = score_e_c.mean(dim=0), score_e_c.std(dim=0)
            score_t_c = similarity(test.repeat(cohort.shape[0], 1, 1), cohort)
            score_t_c = torch.topk(score_t_c, k=topk, dim=0)[0]
            mean_t_c, std_t_c = score_t_c.mean(dim=0), score_t_c.std(dim=0)
        score = similarity(enrol, test)[0]
        if cohort is not None:
            score_e = (score - mean_e_c) / std_e_c
            score_t = (score - mean_t_c) / std_t_c
            score = 0.5 * (score_e + score_t)
        out.write(f"{enrol_id} {test_id} {label} {float(score):f}\n")
        (positive if label == 1 else negative).append(score)
    return positive, negative


def metrics_child(n, seed):
    """Run in a child process: time EER + minDCF on n scores, peak RSS."""
    gen = torch.Generator().manual_seed(seed)
    scores, labels = score_set(n, gen)
    pos, neg = scores[labels], scores[~labels]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    EER(pos, neg)
    minDCF(pos, neg)
    dropin = time.perf_counter() - start
    combined, _ = timed(lambda: verification_metrics(scores, labels))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "dropin_s": dropin,
                "combined_s": combined,
                "base_mb": base / 1024,
                "peak_mb": peak / 1024,
            }
        )
    )


def line(name, value, reference, ratio, need):
    print(
        f"  {name:46s} {value:>12s}  ref {reference:>12s}  {ratio:>10s}  {need}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--trials", type=int, default=1_000_000)
    parser.add_argument("--loop-trials", type=int, default=20_000)
    parser.add_argument("--metric-scores", type=int, default=10_000_000)
    parser.add_argument("--sb-eer-scores", type=int, default=30_000)
    parser.add_argument("--sb-mindcf-scores", type=int, default=12_000)
    parser.add_argument("--cohort", type=int, default=20_000)
    parser.add_argument("--topk", type=int, default=300)
    parser.add_argument("--snorm-loop-trials", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metrics-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.metrics_child:
        metrics_child(args.metrics_child, args.seed)
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {args.device}"
    )
    print("format: figure, ours, reference, ratio, requirement")

    print("\n1. agreement (6 sets of 3000 scores: 3 random, 3 tied to 0.1)")
    worst = check_agreement(args.seed)
    for key, name in (
        ("eer", "EER - SpeechBrain EER"),
        ("min_dcf", "minDCF - SpeechBrain minDCF"),
        ("sklearn", "EER - scikit-learn ROC EER"),
    ):
        print(f"  max |{name}| {worst[key]:.1e} (need <= 1e-4)")
    print(f"  thresholds unlike SpeechBrain's: {worst['thresholds']} of 12")

    print(
        f"\n2. cosine scoring: {args.trials} trials over {args.utterances} "
        f"utterances x {args.dim}"
    )
    ids, emb, trials = embeddings_and_trials(
        args.utterances, args.dim, args.trials, args.seed
    )
    ours, raw = timed(
        lambda: score_trials((ids, emb), trials, device=args.device), repeats=3
    )
    count = min(args.loop_trials, args.trials)
    loop, (positive, _) = timed(lambda: sb_style_loop(ids, emb, trials, count))
    loop_full = loop * args.trials / count
    line(
        "score_trials (best of 3)",
        f"{ours:.3f} s",
        "2 s limit",
        f"{ours / 2:.2f}x",
        "(need < 1)",
    )
    line(
        f"per-trial loop, {count} trials x {args.trials / count:g}",
        f"{ours:.3f} s",
        f"{loop_full:.1f} s",
        f"{loop_full / ours:.0f}x",
        "(need >= 300x; loop extrapolated linearly)",
    )
    loop_pos = torch.stack(positive).reshape(-1)
    ours_pos = raw[:count][torch.from_numpy(trials.labels[:count])]
    print(
        f"  max |score - loop score| on the subset: "
        f"{(loop_pos - ours_pos).abs().max():.1e}"
    )

    print(
        f"\n3. metrics: EER + minDCF on {args.metric_scores} scores "
        "(child process)"
    )
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--metrics-child",
            str(args.metric_scores),
            "--seed",
            str(args.seed),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    res = json.loads(child.stdout.strip().splitlines()[-1])
    line(
        "EER() + minDCF() drop-ins",
        f"{res['dropin_s']:.2f} s",
        "10 s limit",
        f"{res['dropin_s'] / 10:.2f}x",
        "(need < 1)",
    )
    line(
        "verification_metrics (one sort, + actDCF, Cllr)",
        f"{res['combined_s']:.2f} s",
        "10 s limit",
        f"{res['combined_s'] / 10:.2f}x",
        "(need < 1)",
    )
    line(
        "peak RSS of that process",
        f"{res['peak_mb']:.0f} MB",
        "2048 MB limit",
        f"{res['peak_mb'] / 2048:.2f}x",
        f"(need < 1; {res['base_mb']:.0f} MB before the metrics)",
    )
    from speechbrain.utils import metric_stats as sb

    gen = torch.Generator().manual_seed(args.seed + 1)
    scores, labels = score_set(args.sb_eer_scores, gen)
    pos, neg = scores[labels], scores[~labels]
    ours, mine = timed(lambda: EER(pos, neg), repeats=3)
    theirs_t, theirs = timed(lambda: sb.EER(pos, neg))
    line(
        f"EER at {args.sb_eer_scores} scores",
        f"{ours * 1e3:.1f} ms",
        f"{theirs_t:.2f} s",
        f"{theirs_t / ours:.0f}x",
        f"(need >= 100x; |diff| {abs(mine[0] - theirs[0]):.1e})",
    )
    if args.sb_eer_scores < 100_000:
        print(
            "  SpeechBrain's EER loops over ~2N thresholds, each comparing N "
            "scores, so the ratio grows with N; --sb-eer-scores 100000 "
            "measures it at 100k (a few minutes)"
        )
    scores, labels = score_set(args.sb_mindcf_scores, gen)
    pos, neg = scores[labels], scores[~labels]
    ours, mine = timed(lambda: minDCF(pos, neg), repeats=3)
    theirs_t, theirs = timed(lambda: sb.minDCF(pos, neg))
    sb_gb = 2 * args.sb_mindcf_scores * len(neg) * 5 / 2**30
    line(
        f"minDCF at {args.sb_mindcf_scores} scores",
        f"{ours * 1e3:.1f} ms",
        f"{theirs_t:.2f} s",
        f"{theirs_t / ours:.0f}x",
        f"(need >= 100x; |diff| {abs(mine[0] - theirs[0]):.1e})",
    )
    print(
        f"  SpeechBrain's minDCF holds ~{sb_gb:.1f} GB of thresholds x "
        f"scores at {args.sb_mindcf_scores}, "
        f"~{sb_gb * (1e5 / args.sb_mindcf_scores) ** 2:.0f} GB at 100k: it "
        "is compared at equal size, one it can run at"
    )

    print(
        f"\n4. adaptive s-norm: {args.trials} trials, cohort {args.cohort}, "
        f"top-k {args.topk}"
    )
    cohort = torch.randn(
        args.cohort,
        args.dim,
        generator=torch.Generator().manual_seed(args.seed),
    )
    ours, normed = timed(
        lambda: score_trials(
            (ids, emb),
            trials,
            norm="as",
            cohort=cohort,
            topk=args.topk,
            device=args.device,
        )
    )
    count = min(args.snorm_loop_trials, args.trials)
    loop, (positive, negative) = timed(
        lambda: sb_style_loop(
            ids, emb, trials, count, cohort.unsqueeze(1), args.topk
        )
    )
    loop_full = loop * args.trials / count
    line(
        "score_trials(norm='as')",
        f"{ours:.2f} s",
        "20 s limit",
        f"{ours / 20:.2f}x",
        "(need < 1)",
    )
    line(
        f"per-trial cohort loop, {count} trials x {args.trials / count:g}",
        f"{ours:.2f} s",
        f"{loop_full:.0f} s",
        f"{loop_full / ours:.0f}x",
        "(loop extrapolated linearly)",
    )
    subset = torch.from_numpy(trials.labels[:count])
    loop_scores = torch.zeros(count)
    loop_scores[subset] = torch.stack(positive).reshape(-1)
    loop_scores[~subset] = torch.stack(negative).reshape(-1)
    print(
        f"  max |AS-norm score - loop score| on the subset: "
        f"{(loop_scores - normed[:count]).abs().max():.1e}"
    )
    for name, values in (("raw", raw), ("AS-norm", normed)):
        value = eer(values, trials.labels)[0]
        dcf = min_dcf(values, trials.labels, normalized=True)[0]
        print(f"  {name}: EER {100 * value:.2f}%, minDCF {dcf:.4f}")


if __name__ == "__main__":
    main()
