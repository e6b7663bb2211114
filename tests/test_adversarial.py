"""Gradient reversal, speaker adversary, entropy loss and lambda schedule."""

import math

import pytest
import torch

from emotion_invariant.losses.adversarial import (
    BatchStandardize,
    EmbeddingMemory,
    GradientReversal,
    GradientReversalFunction,
    LambdaSchedule,
    SpeakerAdversary,
    speaker_entropy_loss,
)


def _grad_through(module, x, weights):
    x = x.clone().requires_grad_(True)
    (module(x) * weights).sum().backward()
    return x.grad


@pytest.mark.parametrize("lambda_", [0.0, 0.3, 1.0, 7.5])
def test_reversal_is_identity_forward_and_minus_lambda_backward(lambda_):
    torch.manual_seed(0)
    x = torch.randn(4, 5)
    weights = torch.randn(4, 5)
    grl = GradientReversal(lambda_)
    assert torch.equal(grl(x), x)
    identity_grad = _grad_through(torch.nn.Identity(), x, weights)
    assert torch.equal(identity_grad, weights)
    assert torch.allclose(
        _grad_through(grl, x, weights), -lambda_ * identity_grad
    )


def test_reversal_inside_a_network_flips_only_upstream_gradients():
    torch.manual_seed(0)
    encoder = torch.nn.Linear(3, 4)
    head = torch.nn.Linear(4, 2)
    x = torch.randn(5, 3)

    head(encoder(x)).square().sum().backward()
    plain_enc = encoder.weight.grad.clone()
    plain_head = head.weight.grad.clone()
    encoder.zero_grad()
    head.zero_grad()

    head(GradientReversal(0.5)(encoder(x))).square().sum().backward()
    assert torch.allclose(encoder.weight.grad, -0.5 * plain_enc)
    assert torch.allclose(head.weight.grad, plain_head)


def test_lambda_change_between_steps_takes_effect():
    x = torch.randn(3)
    weights = torch.ones(3)
    grl = GradientReversal(1.0)
    assert torch.allclose(_grad_through(grl, x, weights), -weights)
    grl.set_lambda(0.25)
    assert torch.allclose(_grad_through(grl, x, weights), -0.25 * weights)
    grl.lambda_ = 4.0
    assert torch.allclose(_grad_through(grl, x, weights), -4.0 * weights)
    adversary = SpeakerAdversary(3, 2, n_hidden_layers=0)
    adversary.set_lambda(2.0)
    assert adversary.grl.lambda_ == 2.0


def test_function_lambda_gets_no_gradient():
    x = torch.randn(2, requires_grad=True)
    y = GradientReversalFunction.apply(x, 3.0)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((2,), -3.0))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_lambda_is_rejected(bad):
    with pytest.raises(ValueError, match="lambda"):
        GradientReversal(bad)
    grl = GradientReversal()
    with pytest.raises(ValueError, match="lambda"):
        grl.set_lambda(bad)
    grl.lambda_ = bad
    with pytest.raises(ValueError, match="lambda"):
        grl(torch.zeros(1))


def test_adversary_paths_route_gradients_as_documented():
    torch.manual_seed(0)
    adversary = SpeakerAdversary(6, 4, hidden_size=8, lambda_=0.5)
    emb = torch.randn(5, 6)
    weights = torch.randn(5, 4)

    def grads(**kwargs):
        adversary.zero_grad()
        x = emb.clone().requires_grad_(True)
        (adversary(x, **kwargs) * weights).sum().backward()
        head = [
            None if p.grad is None else p.grad.clone()
            for p in adversary.parameters()
        ]
        return x.grad, head

    plain_x, plain_head = grads(reverse=False)
    reversed_x, reversed_head = grads()
    assert torch.allclose(reversed_x, -0.5 * plain_x)
    for a, b in zip(plain_head, reversed_head):
        assert torch.allclose(a, b)

    frozen_x, frozen_head = grads(reverse=False, head_grad=False)
    assert torch.allclose(frozen_x, plain_x)
    assert all(g is None or not g.any() for g in frozen_head)
    with torch.no_grad():
        assert torch.equal(
            adversary(emb, reverse=False, head_grad=False), adversary(emb)
        )


def test_adversary_shapes_and_bad_arguments():
    adversary = SpeakerAdversary(8, 3, hidden_size=4, n_hidden_layers=2)
    assert adversary(torch.randn(2, 1, 8)).shape == (2, 1, 3)
    linears = [m for m in adversary.head if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    with pytest.raises(ValueError, match="speakers"):
        SpeakerAdversary(8, 1)
    with pytest.raises(ValueError, match="n_hidden_layers"):
        SpeakerAdversary(8, 3, n_hidden_layers=-1)


def _naive_entropy_loss(logits):
    out = []
    for row in logits.tolist():
        top = max(row)
        z = sum(math.exp(v - top) for v in row)
        p = [math.exp(v - top) / z for v in row]
        h = -sum(q * math.log(q) for q in p if q > 0)
        out.append(math.log(len(row)) - h)
    return out


def test_entropy_loss_matches_naive_formula():
    torch.manual_seed(0)
    logits = 3 * torch.randn(7, 5, dtype=torch.float64)
    naive = torch.tensor(_naive_entropy_loss(logits), dtype=torch.float64)
    per_row = speaker_entropy_loss(logits, reduction="none")
    assert torch.allclose(per_row, naive)
    assert torch.allclose(speaker_entropy_loss(logits), naive.mean())
    assert (per_row >= 0).all()
    assert (per_row <= math.log(5) + 1e-12).all()


def test_entropy_loss_zero_iff_uniform_and_log_k_when_peaked():
    uniform = torch.full((3, 4), 2.5)
    assert speaker_entropy_loss(uniform).abs() < 1e-7
    peaked = torch.tensor([[50.0, 0.0, 0.0, 0.0]])
    assert torch.isclose(
        speaker_entropy_loss(peaked), torch.tensor(math.log(4))
    )
    nearly = torch.tensor([[0.01, 0.0, 0.0, 0.0]])
    assert speaker_entropy_loss(nearly) > 0


def test_entropy_loss_gradient_points_towards_uniform():
    torch.manual_seed(0)
    logits = torch.randn(6, 5, requires_grad=True)
    loss = speaker_entropy_loss(logits, reduction="none")
    loss.sum().backward()

    def entropy(z):
        p = torch.softmax(z, dim=-1)
        return -(p * p.log()).sum(-1)

    stepped = logits.detach() - 0.1 * logits.grad
    assert (entropy(stepped) > entropy(logits.detach())).all()

    uniform = torch.zeros(2, 5, requires_grad=True)
    speaker_entropy_loss(uniform).backward()
    assert uniform.grad.abs().max() < 1e-7


def test_entropy_loss_through_frozen_head_makes_encoder_uniform():
    torch.manual_seed(0)
    adversary = SpeakerAdversary(4, 3, hidden_size=8)
    head_before = [p.detach().clone() for p in adversary.parameters()]
    emb = torch.randn(8, 4, requires_grad=True)
    optimiser = torch.optim.SGD([emb, *adversary.parameters()], lr=0.5)
    start = speaker_entropy_loss(adversary(emb, reverse=False, head_grad=False))
    for _ in range(20):
        optimiser.zero_grad()
        loss = speaker_entropy_loss(
            adversary(emb, reverse=False, head_grad=False)
        )
        loss.backward()
        optimiser.step()
    assert loss < start
    for before, after in zip(head_before, adversary.parameters()):
        assert torch.equal(before, after)


def test_entropy_loss_bad_input():
    with pytest.raises(ValueError, match=">= 2 speakers"):
        speaker_entropy_loss(torch.zeros(3, 1))
    with pytest.raises(ValueError, match="reduction"):
        speaker_entropy_loss(torch.zeros(3, 2), reduction="sum")


def test_dann_schedule_matches_formula_endpoints_and_is_monotone():
    schedule = LambdaSchedule("dann", gamma=10.0, max_lambda=0.8)
    grid = [i / 100 for i in range(101)]
    values = [schedule(p) for p in grid]
    assert values[0] == 0.0
    expected_end = 0.8 * (2 / (1 + math.exp(-10.0)) - 1)
    assert values[-1] == pytest.approx(expected_end)
    assert values[-1] == pytest.approx(0.8, abs=1e-4)
    assert all(b > a for a, b in zip(values, values[1:]))
    for p, v in zip(grid, values):
        assert v == pytest.approx(0.8 * (2 / (1 + math.exp(-10 * p)) - 1))


def test_linear_and_constant_schedules_with_warmup():
    linear = LambdaSchedule("linear", max_lambda=2.0, warmup=0.2)
    assert linear(0.0) == 0.0
    assert linear(0.19) == 0.0
    assert linear(0.2) == 0.0
    assert linear(0.6) == pytest.approx(1.0)
    assert linear(1.0) == pytest.approx(2.0)
    values = [linear(i / 50) for i in range(51)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    constant = LambdaSchedule("constant", max_lambda=0.3, warmup=0.5)
    assert constant(0.4) == 0.0
    assert constant(0.5) == 0.3
    assert constant(1.0) == 0.3
    dann = LambdaSchedule(warmup=0.5)
    assert dann(0.5) == 0.0
    assert 0 < dann(0.75) < dann(1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "exp"}, "kind"),
        ({"gamma": 0.0}, "gamma"),
        ({"max_lambda": -1.0}, "max_lambda"),
        ({"warmup": 1.0}, "warmup"),
    ],
)
def test_schedule_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LambdaSchedule(**kwargs)


@pytest.mark.parametrize("progress", [-0.01, 1.01, float("nan")])
def test_schedule_bad_progress(progress):
    with pytest.raises(ValueError, match="progress"):
        LambdaSchedule()(progress)


def test_memory_keeps_the_latest_entries_like_a_naive_queue():
    torch.manual_seed(0)
    memory = EmbeddingMemory(capacity=10, dim=3)
    naive = []
    for size in (4, 1, 7, 12, 3, 0, 9):
        emb = torch.randn(size, 1, 3)  # ECAPA's [B, 1, D] is accepted
        labels = torch.randint(0, 50, (size,))
        memory.push(emb, labels)
        naive = (naive + list(zip(emb.reshape(size, 3), labels)))[-10:]
        assert len(memory) == len(naive)
        kept = {
            (tuple(e.tolist()), int(lab))
            for e, lab in zip(memory.embeddings, memory.labels)
            if lab >= 0
        }
        assert kept == {(tuple(e.tolist()), int(lab)) for e, lab in naive}


def test_memory_samples_only_stored_pairs_without_gradient():
    memory = EmbeddingMemory(capacity=8, dim=2)
    emb = torch.arange(10.0).reshape(5, 2).requires_grad_(True)
    memory.push(emb, torch.arange(5))
    out, labels = memory.sample(200, generator=torch.Generator().manual_seed(1))
    assert not out.requires_grad
    # Each sampled embedding is the one stored with its label.
    torch.testing.assert_close(out, emb.detach()[labels])
    assert set(labels.tolist()) == set(range(5))


def test_memory_state_dict_round_trip_and_errors():
    memory = EmbeddingMemory(capacity=4, dim=2)
    memory.push(torch.randn(6, 2), torch.arange(6))
    restored = EmbeddingMemory(capacity=4, dim=2)
    restored.load_state_dict(memory.state_dict())
    assert len(restored) == 4
    assert int(restored.position) == int(memory.position)
    torch.testing.assert_close(restored.labels, memory.labels)
    torch.testing.assert_close(restored.embeddings, memory.embeddings)
    with pytest.raises(ValueError, match="empty"):
        EmbeddingMemory(capacity=4, dim=2).sample(1)
    with pytest.raises(ValueError, match="3-d"):
        memory.push(torch.randn(2, 3), torch.arange(2))
    with pytest.raises(ValueError, match="capacity"):
        EmbeddingMemory(capacity=-1, dim=2)
    off = EmbeddingMemory(capacity=0, dim=2)
    off.push(torch.randn(3, 2), torch.arange(3))
    assert len(off) == 0


def test_batch_standardize_matches_naive_formula():
    torch.manual_seed(0)
    x = 5 + 3 * torch.randn(20, 1, 6)
    flat = x.reshape(20, 6)
    naive = (flat - flat.mean(0)) / torch.sqrt(
        flat.var(0, unbiased=False) + 1e-5
    )
    torch.testing.assert_close(
        BatchStandardize(6)(x), naive.reshape(20, 1, 6), atol=1e-5, rtol=1e-5
    )


def test_input_norm_head_ignores_per_dimension_scale():
    """With input_norm the head sees a tiny-variance direction as a probe on
    standardised features does: rescaling dimensions changes nothing."""
    torch.manual_seed(0)
    adv = SpeakerAdversary(4, 3, hidden_size=8, input_norm=True)
    plain = SpeakerAdversary(4, 3, hidden_size=8)
    x = torch.randn(32, 4)
    scale = torch.tensor([0.1, 1.0, 50.0, 2.0])
    shift = torch.tensor([3.0, -1.0, 0.0, 7.0])
    torch.testing.assert_close(
        adv(x * scale + shift, reverse=False),
        adv(x, reverse=False),
        atol=2e-3,
        rtol=1e-3,
    )
    assert not torch.allclose(
        plain(x * scale + shift, reverse=False), plain(x, reverse=False)
    )
    assert not list(adv.head[0].parameters())
    assert not list(adv.head[0].buffers())
