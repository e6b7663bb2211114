"""Fine-tuning helpers against naive references."""

import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

from emotion_invariant.models.finetune import (
    L2SP,
    batchnorm_eval,
    encoder_stages,
    freeze_lower_blocks,
    imprint_head,
)


def _ecapa():
    torch.manual_seed(0)
    return ECAPA_TDNN(
        12,
        channels=[16, 16, 16, 16, 48],
        lin_neurons=8,
        attention_channels=8,
        se_channels=8,
    )


def test_l2sp_value_and_gradient_against_naive():
    model = _ecapa()
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    reg = L2SP(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    model.blocks[0].requires_grad_(False)  # frozen: not penalised
    penalty = reg(model)
    naive = sum(
        ((p - start[k]) ** 2).sum()
        for k, p in model.named_parameters()
        if p.requires_grad
    )
    torch.testing.assert_close(penalty, naive)
    penalty.backward()
    for key, param in model.named_parameters():
        if param.requires_grad:
            # the gradient points away from the start: descent goes back
            torch.testing.assert_close(param.grad, 2 * (param - start[key]))
        else:
            assert param.grad is None


def test_l2sp_moves_with_the_model():
    model = torch.nn.Linear(3, 2)
    reg = L2SP(model).to(torch.float64)
    assert all(b.dtype == torch.float64 for b in reg.buffers())


def test_imprint_against_naive_means():
    torch.manual_seed(0)
    emb = torch.randn(20, 5)
    labels = torch.randint(0, 4, (20,))
    labels[labels == 2] = 3  # class 2 has no sample
    weight = torch.randn(4, 5)
    before = weight.clone()
    seen = imprint_head(weight, emb, labels)
    assert seen.tolist() == [True, True, False, True]
    for c in (0, 1, 3):
        unit = emb[labels == c] / emb[labels == c].norm(dim=1, keepdim=True)
        mean = unit.mean(0)
        torch.testing.assert_close(weight[c], mean / mean.norm())
    torch.testing.assert_close(weight[2], before[2])


def test_frozen_stages_get_no_gradient():
    model = _ecapa()
    assert len(encoder_stages(model)) == 6
    frozen = freeze_lower_blocks(model, 5)
    assert frozen[-1] is model.mfa
    out = model(torch.randn(2, 50, 12))
    out.sum().backward()
    for stage in frozen:
        assert all(p.grad is None for p in stage.parameters())
    assert all(p.grad is not None for p in model.asp.parameters())
    assert model.fc.conv.weight.grad is not None
    with pytest.raises(ValueError, match="freeze_blocks: 7 is out of range"):
        freeze_lower_blocks(_ecapa(), 7)


def test_batchnorm_eval_keeps_running_statistics():
    model = _ecapa().train()
    stats = {
        k: v.clone() for k, v in model.state_dict().items() if "running" in k
    }
    batchnorm_eval(model)
    model(torch.randn(3, 40, 12) * 5 + 2)
    for key, value in stats.items():
        assert torch.equal(model.state_dict()[key], value), key
    model.train()  # without it the statistics move
    model(torch.randn(3, 40, 12) * 5 + 2)
    key = next(iter(stats))
    assert not torch.equal(model.state_dict()[key], stats[key])


def test_voiced_region_against_naive_frames():
    from emotion_invariant.data.trim import trim_silence, voiced_region

    torch.manual_seed(0)
    rate, size = 1000, 20  # 20 samples a frame
    wave = torch.cat(
        [
            1e-4 * torch.randn(95),  # silence, 4.75 frames
            torch.randn(200),  # speech
            0.05 * torch.randn(40),  # quieter, -26 dB: kept at 40 dB
            1e-4 * torch.randn(117),
        ]
    )
    start, stop = voiced_region(wave, rate, threshold_db=40.0, frame=0.02)
    frames = wave[: len(wave) // size * size].reshape(-1, size)
    rms = frames.pow(2).mean(1).sqrt()
    keep = [i for i, r in enumerate(rms) if 20 * (r / rms.max()).log10() > -40]
    assert (start, stop) == (keep[0] * size, (keep[-1] + 1) * size)
    assert 80 <= start <= 100 and 320 <= stop <= 340
    # at 20 dB the quieter part is silence
    assert voiced_region(wave, rate, threshold_db=20.0)[1] <= 300
    assert torch.equal(trim_silence(wave, rate, 40.0, 0.0), wave[start:stop])
    # silent or shorter than a frame: unchanged
    assert voiced_region(torch.zeros(100), rate) == (0, 100)
    assert voiced_region(torch.ones(5), rate) == (0, 5)
