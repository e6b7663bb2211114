"""Deterministic batched embedding extraction from manifest rows.

Utterances are sorted by duration and zero-padded into batches with
SpeechBrain's relative lengths, so any ``embed_fn(wavs, rel_lens)`` (for
instance ``EncoderClassifier.encode_batch``) sees what SpeechBrain's own
loaders give it. Whole utterances, no random crop; audio is read with
soundfile, mixed down to mono and resampled to the model's rate.
"""

import torch
from tqdm import tqdm

from emotion_invariant.data.audio import AudioError, read_audio
from emotion_invariant.scoring.errors import ScoringError


def pad_batch(signals):
    """Zero-pad waveforms to ``[B, T]`` with relative lengths.

    Arguments
    ---------
    signals : list of torch.Tensor
        1-D waveforms.

    Returns
    -------
    wavs : torch.Tensor
        ``[B, T_max]``.
    rel_lens : torch.Tensor
        ``[B]``, each length divided by ``T_max``, as in SpeechBrain.

    Example
    -------
    >>> wavs, lens = pad_batch([torch.ones(4), torch.ones(2)])
    >>> wavs
    tensor([[1., 1., 1., 1.],
            [1., 1., 0., 0.]])
    >>> lens
    tensor([1.0000, 0.5000])
    """
    lengths = torch.tensor([len(s) for s in signals], dtype=torch.float32)
    wavs = torch.zeros(len(signals), int(lengths.max()))
    for i, signal in enumerate(signals):
        wavs[i, : len(signal)] = signal
    return wavs, lengths / lengths.max()


def extract_embeddings(
    rows,
    embed_fn,
    batch_size=16,
    device=None,
    data_root=None,
    sample_rate=16000,
    progress=True,
):
    """Embed every row's audio with ``embed_fn``, in length-sorted batches.

    Rows are sorted by ``duration`` (longest first, so an out-of-memory
    batch shows up at once) and batched; the output keeps the rows' order.
    Runs under ``torch.no_grad``; the caller puts the model in eval mode.

    Arguments
    ---------
    rows : list of dict
        Manifest rows with ``ID``, ``wav`` and ``duration`` (see
        :func:`read_audio` for ``start``/``stop``).
    embed_fn : callable
        ``embed_fn(wavs [B, T], rel_lens [B]) -> [B, D]`` (``[B, 1, D]`` is
        accepted too), e.g. a SpeechBrain ``encode_batch``.
    batch_size : int
        Utterances per call.
    device : str or torch.device, optional
        Where batches go; ``cuda`` when available, else ``cpu``.
    data_root : str, optional
        What ``$data_root`` stands for in ``wav``.
    sample_rate : int
        The rate ``embed_fn`` expects.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    ids : list of str
        The rows' ``ID`` in input order.
    embeddings : torch.Tensor
        float32 ``[N, D]`` on the CPU.

    Example
    -------
    >>> import os, tempfile, soundfile, numpy
    >>> folder = tempfile.mkdtemp()
    >>> rows = []
    >>> for i, n in enumerate([1600, 3200]):
    ...     soundfile.write(os.path.join(folder, f"{i}.wav"),
    ...                     numpy.full(n, 0.5), 16000)
    ...     rows.append({"ID": f"u{i}", "wav": f"$data_root/{i}.wav",
    ...                  "duration": n / 16000})
    >>> def embed(wavs, lens):  # mean amplitude and length, in samples
    ...     n = lens * wavs.shape[1]
    ...     return torch.stack([wavs.sum(1) / n, n], dim=1)
    >>> ids, emb = extract_embeddings(rows, embed, device="cpu",
    ...                               data_root=folder, progress=False)
    >>> ids, emb
    (['u0', 'u1'], tensor([[5.0000e-01, 1.6000e+03],
            [5.0000e-01, 3.2000e+03]]))
    """
    if batch_size < 1:
        raise ScoringError(f"batch_size must be at least 1, got {batch_size}")
    if isinstance(embed_fn, torch.nn.Module) and embed_fn.training:
        raise ScoringError(
            "embed_fn is a module in training mode: call .eval() first so "
            "that dropout and batch statistics do not change embeddings"
        )
    ids = [str(row["ID"]) for row in rows]
    if not ids:
        raise ScoringError("no rows to embed")
    if len(set(ids)) != len(ids):
        seen = set()
        dup = next(x for x in ids if x in seen or seen.add(x))
        raise ScoringError(f"duplicate utterance ID {dup!r} in the rows")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"

    def duration(i):
        try:
            return float(rows[i].get("duration", 0.0))
        except ValueError:
            raise ScoringError(
                f"utterance {ids[i]!r}: duration {rows[i]['duration']!r} "
                "is not a number"
            ) from None

    order = sorted(range(len(rows)), key=lambda i: (-duration(i), i))
    outputs = [None] * len(rows)
    batches = range(0, len(order), batch_size)
    with torch.no_grad():
        for start in tqdm(batches, desc="embeddings", disable=not progress):
            batch = order[start : start + batch_size]
            try:
                signals = [
                    read_audio(rows[i], data_root, sample_rate) for i in batch
                ]
            except AudioError as err:
                raise ScoringError(str(err)) from err
            wavs, rel_lens = pad_batch(signals)
            out = embed_fn(wavs.to(device), rel_lens.to(device))
            if out.shape[0] != len(batch):
                raise ScoringError(
                    f"embed_fn returned shape {tuple(out.shape)} for a batch "
                    f"of {len(batch)}; expected [B, D] or [B, 1, D]"
                )
            out = out.reshape(len(batch), -1).float().cpu()
            for i, vector in zip(batch, out):
                outputs[i] = vector
    return ids, torch.stack(outputs)
