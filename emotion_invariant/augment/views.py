"""Multi-view batches for supervised contrastive training.

Builds the ``V`` views per utterance that SupCon (Khosla et al., 2020; Li &
Mak, 2022) contrasts, with SpeechBrain's ``Augmenter``, and keeps every
view's label that of the utterance it was made from, whatever the
``Augmenter``'s settings.

Layout: the flat batch is view-major, row ``v * B + b`` is view ``v`` of
utterance ``b``; :func:`to_views` turns its embeddings into the
``[B, V, D]`` that :class:`~emotion_invariant.losses.supcon.SupConLoss`
takes and :func:`flatten_views` goes back.

``Augmenter.replicate_labels`` cannot be trusted here: with
``parallel_augment_fixed_bs: True`` each augmentation sees only its share of
the batch and the augmented part has one row per input, but
``replicate_labels`` still repeats the labels once per augmentation, so it
returns too many (and the returned lengths have the same surplus when the
augmentations do not return lengths). :func:`augmenter_sources` rebuilds
the source of every row from the settings instead, and :func:`make_views`
checks it against the rows it got.
"""

import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import DropChunk, DropFreq


def default_view_augmenter():
    """An ``Augmenter`` for speaker views that leaves pitch alone.

    One or two of frequency-band dropping and chunk dropping, in random
    order, one output row per input. No speed perturbation: it shifts pitch,
    an emotion cue, and a sped-up copy should not count as the same speaker.

    Returns
    -------
    speechbrain.augment.augmenter.Augmenter

    Example
    -------
    >>> aug = default_view_augmenter()
    >>> out, lens = aug(torch.randn(3, 16000), torch.ones(3))
    >>> out.shape
    torch.Size([3, 16000])
    """
    return Augmenter(
        parallel_augment=False,
        concat_original=False,
        min_augmentations=1,
        max_augmentations=2,
        shuffle_augmentations=True,
        augmentations=[
            DropFreq(),
            DropChunk(drop_length_low=800, drop_length_high=3200),
        ],
    )


def augmenter_sources(augmenter, batch_size, device=None):
    """Source utterance of each row of an ``Augmenter``'s last output.

    Follows ``Augmenter.forward``: the original rows it concatenated
    (``concat_original``, ``concat_start_index``/``concat_end_index``),
    then ``repeat_augment`` passes over the rows it augmented
    (``augment_start_index``/``augment_end_index``), each pass holding every
    such row once per selected augmentation with ``parallel_augment``, or
    once with ``parallel_augment_fixed_bs`` (each augmentation takes a
    contiguous share) or a sequential pipeline. A call that augmented
    nothing returns its input.

    Arguments
    ---------
    augmenter : speechbrain.augment.augmenter.Augmenter
        Called once since its input batch of ``batch_size`` rows.
    batch_size : int
        Rows in the input of that call.
    device : torch.device, optional
        Device of the result.

    Returns
    -------
    torch.Tensor
        Long tensor, one input row index per output row.

    Example
    -------
    >>> from speechbrain.augment.time_domain import DropFreq
    >>> aug = Augmenter(concat_original=True, augmentations=[DropFreq()])
    >>> out, _ = aug(torch.randn(3, 400), torch.ones(3))
    >>> augmenter_sources(aug, 3)
    tensor([0, 1, 2, 0, 1, 2])
    """
    rows = torch.arange(batch_size, device=device)
    if not augmenter.do_augment:
        return rows
    parts = []
    if augmenter.concat_original and not augmenter.skip_concat:
        parts.append(
            rows[
                augmenter.concat_start_index : augmenter.concat_end_index_batch
            ]
        )
    augmented = rows[
        augmenter.augment_start_index : augmenter.augment_end_index_batch
    ]
    if augmenter.parallel_augment and not augmenter.parallel_augment_fixed_bs:
        augmented = augmented.repeat(int(augmenter.N_augment))
    parts += [augmented] * augmenter.repeat_augment
    return torch.cat(parts)


def _pad_time(x, lengths, n_time):
    """Zero-pad ``x`` on axis 1 to ``n_time``, rescaling relative lengths."""
    if x.shape[1] == n_time:
        return x, lengths
    padded = x.new_zeros((x.shape[0], n_time) + tuple(x.shape[2:]))
    padded[:, : x.shape[1]] = x
    return padded, lengths * (x.shape[1] / n_time)


def _augment_once(wavs, lengths, augmenter):
    """One augmenter call: its rows, their relative lengths and sources."""
    n_utts = wavs.shape[0]
    if augmenter is None:
        return wavs, lengths, torch.arange(n_utts, device=wavs.device)
    out = augmenter(wavs, lengths)
    out, out_lengths = out if isinstance(out, tuple) else (out, lengths)
    if isinstance(augmenter, Augmenter):
        sources = augmenter_sources(augmenter, n_utts, wavs.device)
    else:
        sources = torch.arange(n_utts, device=wavs.device)
    if len(sources) != out.shape[0]:
        raise ValueError(
            f"augmenter returned {out.shape[0]} rows for a batch of "
            f"{n_utts} but its settings account for {len(sources)}; a module "
            f"that is not a SpeechBrain Augmenter must return one row per "
            f"input row"
        )
    if out_lengths.shape[0] != out.shape[0]:
        # Augmenter's own lengths miscount under parallel_augment_fixed_bs.
        # Time-domain augmentations keep relative lengths, so the sources'
        # are right unless branches of different durations were padded
        # together, where they overstate the shorter ones.
        out_lengths = lengths[sources]
    return out, out_lengths, sources


def make_views(wavs, lengths, labels, augmenter, n_views=2, extra_views=()):
    """Make ``n_views`` augmented views of each utterance of a batch.

    The augmenter is called on the whole batch, again while some utterance
    has fewer than ``n_views`` rows; each utterance keeps its first
    ``n_views`` rows in the order the augmenter emits them (so with
    ``concat_original`` its first view is the original). Each view takes the
    label of the utterance it came from, by construction, so a view's label
    is right whatever the augmenter does; for speaker labels that is also
    why the augmenter must not hold ``SpeedPerturb``, whose copies sound
    like another speaker (see :func:`default_view_augmenter`).

    Arguments
    ---------
    wavs : torch.Tensor
        Padded batch ``[B, T]`` (or ``[B, T, C]``).
    lengths : torch.Tensor
        Relative lengths ``[B]``.
    labels : torch.Tensor or sequence of torch.Tensor
        Per-utterance tensors with first axis ``B`` (speaker ids, emotion
        ids, ...), replicated alongside the views.
    augmenter : torch.nn.Module or None
        A SpeechBrain ``Augmenter`` (any settings), a module returning one
        row per input row (``x`` or ``(x, lengths)``), or ``None`` for
        views that are the utterances themselves.
    n_views : int
        Views made by the augmenter (>= 0).
    extra_views : sequence of (torch.Tensor, torch.Tensor)
        Precomputed views appended after them, each ``(wavs [B, T'],
        lengths [B])`` with row ``b`` a view of utterance ``b`` (e.g. emotion
        CopyPaste).

    Returns
    -------
    views : torch.Tensor
        ``[B * V, T_max]`` with ``V = n_views + len(extra_views)``,
        view-major: row ``v * B + b`` is view ``v`` of utterance ``b``.
    lengths : torch.Tensor
        ``[B * V]`` relative to ``T_max``.
    labels : torch.Tensor or sequence of torch.Tensor
        Each label tensor repeated ``V`` times along axis 0.
    view_index : torch.Tensor
        ``[B * V]`` long: the view number of each row.

    Example
    -------
    >>> wavs, lens = torch.randn(3, 800), torch.tensor([1.0, 0.5, 0.75])
    >>> spk = torch.tensor([7, 8, 7])
    >>> views, vlens, vspk, vidx = make_views(
    ...     wavs, lens, spk, default_view_augmenter(), n_views=2
    ... )
    >>> views.shape, vspk.tolist(), vidx.tolist()
    (torch.Size([6, 800]), [7, 8, 7, 7, 8, 7], [0, 0, 0, 1, 1, 1])
    """
    _check_batch(wavs, lengths, labels, n_views, extra_views)
    n_utts = wavs.shape[0]
    device = wavs.device

    chunks = []
    counts = torch.zeros(n_utts, dtype=torch.long, device=device)
    while n_views > 0 and int(counts.min()) < n_views:
        out, out_lengths, sources = _augment_once(wavs, lengths, augmenter)
        per_call = torch.bincount(sources, minlength=n_utts)
        if bool((per_call == 0).any()):
            missing = torch.nonzero(per_call == 0).flatten().tolist()
            raise ValueError(
                f"augmenter output has no row for utterances {missing} of "
                f"the batch; make_views needs every utterance in every call "
                f"(check augment_start_index/augment_end_index and "
                f"concat_start_index/concat_end_index)"
            )
        counts += per_call
        chunks.append((out, out_lengths, sources))

    n_time = max(
        [out.shape[1] for out, _, _ in chunks]
        + [extra.shape[1] for extra, _ in extra_views]
    )
    views, view_lengths = [], []
    if chunks:
        rows, rows_lengths = zip(
            *(_pad_time(out, lens, n_time) for out, lens, _ in chunks)
        )
        rows, rows_lengths = torch.cat(rows), torch.cat(rows_lengths)
        sources = torch.cat([src for _, _, src in chunks])
        # Rank of each row among the rows of its source, in emitted order.
        order = torch.sort(sources, stable=True).indices
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(sources)
        rank[order] = (
            torch.arange(len(sources), device=device) - starts[sources[order]]
        )
        keep = rank < n_views
        dest = rank[keep] * n_utts + sources[keep]
        augmented = rows.new_empty((n_views * n_utts,) + rows.shape[1:])
        augmented[dest] = rows[keep]
        augmented_lengths = rows_lengths.new_empty(n_views * n_utts)
        augmented_lengths[dest] = rows_lengths[keep]
        views.append(augmented)
        view_lengths.append(augmented_lengths)
    for extra, extra_lengths in extra_views:
        extra, extra_lengths = _pad_time(
            extra.to(device), extra_lengths.to(device), n_time
        )
        views.append(extra)
        view_lengths.append(extra_lengths)

    n_total = n_views + len(extra_views)
    view_index = torch.arange(n_total, device=device).repeat_interleave(n_utts)
    return (
        torch.cat(views),
        torch.cat(view_lengths),
        _replicate(labels, n_total),
        view_index,
    )


def parallel_views(wavs, lengths, labels, view, augment=None, extra_views=0):
    """The utterances, their parallel views, then augmented copies.

    The rows of a training batch of the speaker recipe, view-major as
    :func:`make_views` lays them out: row ``b`` is utterance ``b`` as it
    is, row ``B + b`` its parallel view (an emotion CopyPaste, or a copy),
    augmented by ``augment`` when given, then ``extra_views`` blocks of
    augmented copies of the utterances.

    Arguments
    ---------
    wavs : torch.Tensor
        Padded batch ``[B, T]``.
    lengths : torch.Tensor
        Relative lengths ``[B]``.
    labels : torch.Tensor or sequence of torch.Tensor
        Per-utterance tensors with first axis ``B``.
    view : tuple of torch.Tensor
        ``(wavs [B, T'], lengths [B])``: row ``b`` a view of utterance
        ``b``.
    augment : callable, optional
        ``augment(wavs, lengths) -> (wavs, lengths)``, one row per row
        (e.g. SpeechBrain's ``Augmenter`` without concatenation).
    extra_views : int
        Augmented copies of the utterances after the parallel views (they
        need ``augment``, else they are the utterances again).

    Returns
    -------
    views : torch.Tensor
        ``[B * V, T_max]`` with ``V = 2 + extra_views``.
    lengths : torch.Tensor
        ``[B * V]`` relative to ``T_max``.
    labels : torch.Tensor or sequence of torch.Tensor
        Each label tensor repeated ``V`` times along axis 0.

    Example
    -------
    >>> wavs, lens = torch.randn(2, 800), torch.ones(2)
    >>> view = (torch.randn(2, 600), torch.ones(2))
    >>> rows, rows_lens, spk = parallel_views(
    ...     wavs, lens, torch.tensor([3, 4]), view, extra_views=1
    ... )
    >>> rows.shape, rows_lens.tolist(), spk.tolist()
    (torch.Size([6, 800]), [1.0, 1.0, 0.75, 0.75, 1.0, 1.0], [3, 4, 3, 4, 3, 4])
    """
    # The copies draw from torch's generator before the parallel view.
    extra = [
        augment(wavs, lengths) if augment is not None else (wavs, lengths)
        for _ in range(extra_views)
    ]
    if augment is not None:
        view = augment(*view)
    views, lengths, labels, _ = make_views(
        wavs, lengths, labels, None, n_views=1, extra_views=[view, *extra]
    )
    return views, lengths, labels


def _replicate(labels, n_views):
    if isinstance(labels, (list, tuple)):
        return type(labels)(torch.cat([lab] * n_views) for lab in labels)
    return torch.cat([labels] * n_views)


def _check_batch(wavs, lengths, labels, n_views, extra_views):
    if wavs.dim() < 2:
        raise ValueError(
            f"make_views wavs must be [B, T] or [B, T, C], got shape "
            f"{tuple(wavs.shape)}"
        )
    n_utts = wavs.shape[0]
    if tuple(lengths.shape) != (n_utts,):
        raise ValueError(
            f"make_views lengths must be [{n_utts}], got shape "
            f"{tuple(lengths.shape)}"
        )
    all_labels = labels if isinstance(labels, (list, tuple)) else [labels]
    for i, lab in enumerate(all_labels):
        if lab.dim() == 0 or lab.shape[0] != n_utts:
            raise ValueError(
                f"make_views labels[{i}] must have {n_utts} rows, got shape "
                f"{tuple(lab.shape)}"
            )
    if not isinstance(n_views, int) or n_views < 0:
        raise ValueError(
            f"make_views n_views must be an int >= 0, got {n_views}"
        )
    if n_views + len(extra_views) == 0:
        raise ValueError("make_views needs n_views >= 1 or some extra_views")
    for i, (extra, extra_lengths) in enumerate(extra_views):
        if extra.shape[0] != n_utts or extra.shape[2:] != wavs.shape[2:]:
            raise ValueError(
                f"make_views extra_views[{i}] must be [{n_utts}, T'"
                f"{''.join(', ' + str(s) for s in wavs.shape[2:])}], got shape "
                f"{tuple(extra.shape)}"
            )
        if tuple(extra_lengths.shape) != (n_utts,):
            raise ValueError(
                f"make_views extra_views[{i}] lengths must be [{n_utts}], "
                f"got shape {tuple(extra_lengths.shape)}"
            )


def to_views(embeddings, n_views):
    """Reshape view-major embeddings ``[B * V, D]`` to ``[B, V, D]``.

    Arguments
    ---------
    embeddings : torch.Tensor
        ``[B * V, D]`` or ``[B * V, 1, D]`` (SpeechBrain's ECAPA output)
        in the row order of :func:`make_views`.
    n_views : int
        ``V``.

    Returns
    -------
    torch.Tensor
        ``[B, V, D]``; ``[b, v]`` is row ``v * B + b`` of the input.

    Example
    -------
    >>> emb = torch.arange(6.0).unsqueeze(1)  # 3 utterances, 2 views
    >>> to_views(emb, 2)[:, :, 0]
    tensor([[0., 3.],
            [1., 4.],
            [2., 5.]])
    """
    if embeddings.dim() == 3 and embeddings.shape[1] == 1:
        embeddings = embeddings.squeeze(1)
    if embeddings.dim() != 2:
        raise ValueError(
            f"to_views embeddings must be [B * V, D] or [B * V, 1, D], got "
            f"shape {tuple(embeddings.shape)}"
        )
    if n_views < 1 or embeddings.shape[0] % n_views:
        raise ValueError(
            f"to_views cannot split {embeddings.shape[0]} rows into "
            f"{n_views} views"
        )
    return embeddings.reshape(n_views, -1, embeddings.shape[1]).transpose(0, 1)


def flatten_views(features):
    """Inverse of :func:`to_views`: ``[B, V, ...]`` to ``[B * V, ...]``.

    Arguments
    ---------
    features : torch.Tensor
        ``[B, V, ...]``.

    Returns
    -------
    torch.Tensor
        View-major ``[B * V, ...]``.

    Example
    -------
    >>> x = torch.arange(6.0).reshape(6, 1)
    >>> torch.equal(flatten_views(to_views(x, 3)), x)
    True
    """
    if features.dim() < 2:
        raise ValueError(
            f"flatten_views features must be [B, V, ...], got shape "
            f"{tuple(features.shape)}"
        )
    return features.transpose(0, 1).reshape(-1, *features.shape[2:])
