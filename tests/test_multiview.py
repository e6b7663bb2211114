"""Multi-view batches: every view keeps its source utterance's label."""

import itertools

import pytest
import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import DropChunk, DropFreq, SpeedPerturb

from emotion_invariant.augment.views import (
    augmenter_sources,
    default_view_augmenter,
    flatten_views,
    make_views,
    to_views,
)
from emotion_invariant.losses.supcon import SupConLoss

N_UTTS = 6
N_TIME = 40


class AddConstant(torch.nn.Module):
    """Adds a known constant, so every output row can be traced back."""

    def __init__(self, value, return_lengths=True):
        super().__init__()
        self.value = value
        self.return_lengths = return_lengths

    def forward(self, x, lengths):
        """Shift by the constant."""
        if self.return_lengths:
            return x + self.value, lengths
        return x + self.value


def _batch():
    # Utterance b is the constant 100 * b: with added constants below 100,
    # each row's source is value // 100.
    wavs = (100.0 * torch.arange(N_UTTS)).unsqueeze(1).repeat(1, N_TIME)
    lengths = torch.linspace(0.5, 1.0, N_UTTS)
    labels = torch.tensor([11, 12, 13, 11, 14, 12])
    return wavs, lengths, labels


def _traced_sources(rows):
    return torch.div(rows[:, 0], 100, rounding_mode="floor").long()


def _augmenter(return_lengths=True, **settings):
    augmentations = [
        AddConstant(1.0, return_lengths),
        AddConstant(2.0, return_lengths),
        AddConstant(4.0, return_lengths),
    ]
    return Augmenter(augmentations=augmentations, **settings)


SETTINGS = [
    dict(
        parallel_augment=parallel,
        parallel_augment_fixed_bs=fixed,
        concat_original=concat,
        repeat_augment=repeat,
        min_augmentations=1,
        shuffle_augmentations=True,
    )
    for parallel, fixed, concat, repeat in itertools.product(
        (False, True), (False, True), (False, True), (1, 2)
    )
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_augmenter_sources_trace_every_row(settings):
    wavs, lengths, _ = _batch()
    torch.manual_seed(0)
    for return_lengths in (True, False):
        aug = _augmenter(return_lengths, **settings)
        for _ in range(4):
            out, _ = aug(wavs, lengths)
            sources = augmenter_sources(aug, N_UTTS)
            assert torch.equal(sources, _traced_sources(out))


@pytest.mark.parametrize(
    "settings",
    [s for s in SETTINGS if not s["parallel_augment_fixed_bs"]],
)
def test_sources_agree_with_speechbrain_where_it_is_right(settings):
    wavs, lengths, _ = _batch()
    torch.manual_seed(1)
    aug = _augmenter(**settings)
    for _ in range(3):
        aug(wavs, lengths)
        assert torch.equal(
            augmenter_sources(aug, N_UTTS),
            aug.replicate_labels(torch.arange(N_UTTS)),
        )


def test_sources_with_index_ranges_and_skipped_calls():
    wavs, lengths, _ = _batch()
    aug = _augmenter(
        parallel_augment=True,
        parallel_augment_fixed_bs=True,
        concat_original=True,
        augment_start_index=1,
        augment_end_index=5,
        concat_start_index=2,
        min_augmentations=3,
    )
    out, _ = aug(wavs, lengths)
    assert torch.equal(augmenter_sources(aug, N_UTTS), _traced_sources(out))
    assert augmenter_sources(aug, N_UTTS).tolist() == [2, 3, 4, 5, 1, 2, 3, 4]
    never = _augmenter(augment_prob=0.0)
    out, _ = never(wavs, lengths)
    assert torch.equal(augmenter_sources(never, N_UTTS), torch.arange(6))


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("n_views", [1, 2, 3])
def test_make_views_labels_match_sources(settings, n_views):
    wavs, lengths, labels = _batch()
    torch.manual_seed(2)
    for return_lengths in (True, False):
        aug = _augmenter(return_lengths, **settings)
        views, view_lengths, view_labels, view_index = make_views(
            wavs, lengths, labels, aug, n_views=n_views
        )
        total = n_views * N_UTTS
        assert views.shape == (total, N_TIME)
        sources = _traced_sources(views)
        assert torch.equal(sources, torch.arange(N_UTTS).repeat(n_views))
        assert torch.equal(view_labels, labels[sources])
        assert torch.equal(view_lengths, lengths[sources])
        assert torch.equal(
            view_index, torch.arange(n_views).repeat_interleave(N_UTTS)
        )


def test_concat_original_gives_original_as_first_view():
    wavs, lengths, labels = _batch()
    aug = _augmenter(concat_original=True, parallel_augment=True)
    views, _, _, _ = make_views(wavs, lengths, labels, aug, n_views=2)
    assert torch.equal(views[:N_UTTS], wavs)
    assert not torch.equal(views[N_UTTS:], wavs)


def test_sequential_pipeline_augments_every_view():
    wavs, lengths, labels = _batch()
    torch.manual_seed(3)
    aug = _augmenter(min_augmentations=1, shuffle_augmentations=True)
    views, _, _, _ = make_views(wavs, lengths, labels, aug, n_views=3)
    offsets = (views[:, 0] - 100 * _traced_sources(views)).reshape(3, -1)
    assert offsets.min() >= 1 and offsets.max() <= 7


def test_real_augmentations_with_fixed_batch_size():
    # SpeechBrain returns more lengths than rows here (DropFreq and
    # DropChunk return no lengths): make_views must still line them up.
    torch.manual_seed(4)
    wavs = torch.randn(N_UTTS, 1600)
    lengths = torch.linspace(0.5, 1.0, N_UTTS)
    labels = torch.arange(N_UTTS) + 20
    aug = Augmenter(
        parallel_augment=True,
        parallel_augment_fixed_bs=True,
        concat_original=True,
        min_augmentations=2,
        augmentations=[DropFreq(), DropChunk(drop_length_high=200)],
    )
    views, view_lengths, view_labels, _ = make_views(
        wavs, lengths, labels, aug, n_views=3
    )
    assert views.shape == (3 * N_UTTS, 1600)
    assert torch.equal(view_labels, labels.repeat(3))
    assert torch.equal(view_lengths, lengths.repeat(3))
    assert torch.equal(views[:N_UTTS], wavs)


def test_speed_changes_are_padded_with_rescaled_lengths():
    torch.manual_seed(5)
    wavs, lengths, labels = _batch()
    wavs = wavs + torch.rand(N_UTTS, N_TIME)
    aug = Augmenter(
        parallel_augment=True,
        concat_original=True,
        augmentations=[SpeedPerturb(orig_freq=16000, speeds=[50])],
    )
    views, view_lengths, view_labels, _ = make_views(
        wavs, lengths, labels, aug, n_views=2
    )
    # Half speed doubles the duration: the originals are padded to it.
    assert views.shape == (2 * N_UTTS, 2 * N_TIME)
    assert torch.allclose(view_lengths[:N_UTTS], lengths * 0.5)
    assert torch.allclose(view_lengths[N_UTTS:], lengths)
    assert torch.equal(view_labels, labels.repeat(2))


def test_extra_views_are_appended_and_padded():
    wavs, lengths, labels = _batch()
    extra = torch.full((N_UTTS, 2 * N_TIME), -1.0)
    extra_lengths = torch.ones(N_UTTS)
    emo = torch.arange(N_UTTS)
    views, view_lengths, (spk, emo_out), view_index = make_views(
        wavs,
        lengths,
        (labels, emo),
        _augmenter(),
        n_views=2,
        extra_views=[(extra, extra_lengths)],
    )
    assert views.shape == (3 * N_UTTS, 2 * N_TIME)
    assert torch.equal(views[2 * N_UTTS :], extra)
    assert (views[: 2 * N_UTTS, N_TIME:] == 0).all()
    assert torch.allclose(view_lengths[: 2 * N_UTTS], lengths.repeat(2) / 2)
    assert torch.equal(view_lengths[2 * N_UTTS :], extra_lengths)
    assert torch.equal(spk, labels.repeat(3))
    assert torch.equal(emo_out, emo.repeat(3))
    assert view_index.tolist() == [0] * 6 + [1] * 6 + [2] * 6


def test_no_augmenter_and_plain_module():
    wavs, lengths, labels = _batch()
    views, _, view_labels, _ = make_views(wavs, lengths, labels, None, 2)
    assert torch.equal(views, wavs.repeat(2, 1))
    assert torch.equal(view_labels, labels.repeat(2))
    views, _, _, _ = make_views(wavs, lengths, labels, AddConstant(3.0), 1)
    assert torch.equal(views, wavs + 3.0)


def test_uncovered_utterances_are_an_error():
    wavs, lengths, labels = _batch()
    aug = _augmenter(augment_start_index=2)
    with pytest.raises(ValueError, match=r"utterances \[0, 1\]"):
        make_views(wavs, lengths, labels, aug, n_views=2)


class DropsARow(torch.nn.Module):
    def forward(self, x, lengths):
        """Returns one row too few."""
        return x[1:], lengths[1:]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda w, n, y: make_views(w[0], n, y, None), r"\[B, T\]"),
        (lambda w, n, y: make_views(w, n[:2], y, None), "lengths"),
        (lambda w, n, y: make_views(w, n, y[:2], None), r"labels\[0\]"),
        (lambda w, n, y: make_views(w, n, y, None, n_views=0), "n_views"),
        (lambda w, n, y: make_views(w, n, y, None, n_views=-1), "n_views"),
        (
            lambda w, n, y: make_views(
                w, n, y, None, extra_views=[(w[:2], n[:2])]
            ),
            r"extra_views\[0\]",
        ),
        (lambda w, n, y: make_views(w, n, y, DropsARow()), "5 rows"),
    ],
)
def test_bad_input(call, match):
    wavs, lengths, labels = _batch()
    with pytest.raises(ValueError, match=match):
        call(wavs, lengths, labels)


def test_to_views_and_flatten_round_trip():
    emb = torch.randn(12, 4)
    grouped = to_views(emb, 3)
    assert grouped.shape == (4, 3, 4)
    for b in range(4):
        for v in range(3):
            assert torch.equal(grouped[b, v], emb[v * 4 + b])
    assert torch.equal(flatten_views(grouped), emb)
    assert torch.equal(to_views(flatten_views(grouped), 3), grouped)
    assert torch.equal(to_views(emb.unsqueeze(1), 3), grouped)
    with pytest.raises(ValueError, match="cannot split 12 rows into 5"):
        to_views(emb, 5)
    with pytest.raises(ValueError, match=r"\[B \* V, D\]"):
        to_views(torch.randn(12, 2, 4), 3)


def test_views_feed_supcon_consistently():
    torch.manual_seed(6)
    wavs, lengths, labels = _batch()
    views, _, view_labels, _ = make_views(
        wavs, lengths, labels, default_view_augmenter(), n_views=2
    )
    emb = torch.randn(views.shape[0], 1, 8)
    grouped = to_views(emb, 2)
    loss = SupConLoss()
    assert torch.allclose(loss(grouped, labels), loss(emb, view_labels))
    grouped_labels = to_views(view_labels.unsqueeze(1), 2).squeeze(2)
    assert (grouped_labels == labels[:, None]).all()
