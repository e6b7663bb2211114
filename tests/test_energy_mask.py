"""Tests for energy-guided, emotion-aware masking."""

import math

import pytest
import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.lobes.features import Fbank

from emotion_invariant.augment.energy_mask import EnergyGuidedMask, frame_rms


def naive_rms(wave, hop=160, win=400):
    """Frame RMS by a Python loop over centred, zero-padded windows."""
    frames = []
    for t in range(1 + len(wave) // hop):
        start = t * hop - win // 2
        total = 0.0
        for i in range(start, start + win):
            if 0 <= i < len(wave):
                total += float(wave[i]) ** 2
        frames.append(math.sqrt(total / win))
    return torch.tensor(frames)


def naive_mask(energy, n_valid, ratio, span):
    """Greedy reference: loudest frames become span centres in turn."""
    target = round(ratio * n_valid)
    order = sorted(range(n_valid), key=lambda t: (-float(energy[t]), t))
    left, right = span // 2, span - 1 - span // 2
    masked = set()
    for centre in order:
        if len(masked) >= target:
            break
        masked.update(
            range(max(0, centre - left), min(n_valid, centre + right + 1))
        )
    return masked


@pytest.mark.parametrize("samples", [400, 1599, 1600, 1601, 8037, 16000])
def test_frame_count_matches_fbank(samples):
    wav = torch.randn(2, samples)
    feats = Fbank(n_mels=20)(wav)
    assert frame_rms(wav).shape == feats.shape[:2]


def test_frame_rms_matches_naive_loop_and_ignores_padding():
    torch.manual_seed(0)
    wavs = torch.randn(2, 2000)
    rms = frame_rms(wavs)
    for b in range(2):
        assert torch.allclose(rms[b], naive_rms(wavs[b]), atol=1e-5)
    lengths = torch.tensor([1.0, 0.5])
    padded = wavs.clone()
    padded[1, 1000:] = 100.0  # garbage past the relative length
    clean = wavs.clone()
    clean[1, 1000:] = 0.0
    assert torch.allclose(frame_rms(padded, lengths), frame_rms(clean))


def test_masks_exactly_the_loudest_frames_of_a_waveform():
    torch.manual_seed(0)
    samples = 16000
    wav = 0.01 * torch.randn(samples)
    # a loud stretch whose level rises, so frame energies are distinct
    wav[4000:8000] = torch.linspace(0.5, 1.0, 4000) * torch.sign(
        torch.randn(4000)
    )
    wavs = wav.unsqueeze(0)
    feats = Fbank(n_mels=20)(wavs)
    energy = naive_rms(wav)
    frames = feats.shape[1]
    n_mask = 10
    masker = EnergyGuidedMask(mask_ratio=n_mask / frames, span=1)
    out = masker(feats, torch.ones(1), wavs=wavs)
    masked = (out != feats).any(dim=-1)[0].nonzero().flatten().tolist()
    expected = sorted(energy.topk(n_mask).indices.tolist())
    assert masked == expected
    loud = range(25, 51)  # frames whose window overlaps the loud stretch
    assert all(t in loud for t in masked)


def test_spans_match_naive_greedy_and_respect_lengths():
    torch.manual_seed(1)
    batch, frames, dims = 6, 57, 4
    feats = torch.randn(batch, frames, dims)
    energy = torch.rand(batch, frames)
    n_valid = [57, 40, 23, 9, 3, 1]
    lengths = torch.tensor([n / frames for n in n_valid])
    for ratio, span in [(0.2, 5), (0.35, 4), (0.5, 1), (0.1, 7)]:
        out = EnergyGuidedMask(mask_ratio=ratio, span=span)(
            feats, lengths, energy=energy
        )
        for b, n in enumerate(n_valid):
            changed = (out[b] != feats[b]).any(dim=-1)
            got = set(changed.nonzero().flatten().tolist())
            assert got == naive_mask(energy[b], n, ratio, span)
            assert torch.equal(out[b, n:], feats[b, n:])  # padding untouched
            target = round(ratio * n)
            assert target <= len(got) < target + span or target == 0
            mean = sum(feats[b, t] for t in range(n)) / n
            for t in got:
                assert torch.allclose(out[b, t], mean, atol=1e-6)


def test_feature_mean_is_the_default_energy():
    torch.manual_seed(2)
    feats = torch.randn(3, 30, 8)
    lengths = torch.tensor([1.0, 0.8, 0.5])
    masker = EnergyGuidedMask(mask_ratio=0.3, span=3)
    proxy = masker(feats, lengths, energy=feats.mean(dim=-1))
    assert torch.equal(masker(feats, lengths), proxy)
    assert not torch.equal(proxy, feats)


def test_switches():
    torch.manual_seed(3)
    feats = torch.randn(200, 20, 3)
    assert torch.equal(EnergyGuidedMask(mask_ratio=0.0)(feats), feats)
    assert torch.equal(EnergyGuidedMask(prob=0.0)(feats), feats)
    masker = EnergyGuidedMask(mask_ratio=0.3, span=2)
    assert torch.equal(masker.eval()(feats), feats)
    half = EnergyGuidedMask(mask_ratio=0.3, span=2, prob=0.5)(feats)
    hit = (half != feats).any(dim=-1).any(dim=-1).float().mean()
    assert 0.35 < float(hit) < 0.65


def test_plugs_into_augmenter():
    torch.manual_seed(4)
    feats = torch.randn(4, 50, 6)
    lengths = torch.tensor([1.0, 0.9, 0.6, 0.3])
    augmenter = Augmenter(
        concat_original=False,
        min_augmentations=1,
        max_augmentations=1,
        augmentations=[EnergyGuidedMask(mask_ratio=0.2, span=3)],
    )
    out, out_lengths = augmenter(feats, lengths)
    expected = EnergyGuidedMask(mask_ratio=0.2, span=3)(feats, lengths)
    assert torch.equal(out, expected)
    assert torch.equal(out_lengths, lengths)


def test_bad_input():
    masker = EnergyGuidedMask()
    with pytest.raises(ValueError, match=r"feats: expected \[batch, frames"):
        masker(torch.randn(2, 100))
    with pytest.raises(ValueError, match=r"frame_rms\(wavs\) has shape"):
        masker(torch.randn(2, 10, 4), wavs=torch.randn(2, 16000))
    with pytest.raises(ValueError, match="mask_ratio must be"):
        EnergyGuidedMask(mask_ratio=1.5)
    with pytest.raises(ValueError, match="span must be"):
        EnergyGuidedMask(span=0)
