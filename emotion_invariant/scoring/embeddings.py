"""Embedding store: utterance ids and a float32 matrix in one file.

One file holds ``ids`` (list of str) and ``embeddings`` (float32 [N, D]), as
NumPy ``.npz`` or PyTorch ``.pt`` chosen by extension, so scoring reads it
without the model. Both reading and writing check the contents (unique ids,
finite, non-zero rows) and name the file and ids of any problem.
"""

import os

import numpy as np
import torch

from emotion_invariant.atomic import atomic_open
from emotion_invariant.scoring.errors import ScoringError

EXTENSIONS = (".npz", ".pt")


def _extension(path):
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in EXTENSIONS:
        raise ScoringError(
            f"{path}: unknown embedding file type {ext or '(none)'!r}; "
            f"use one of {' '.join(EXTENSIONS)}"
        )
    return ext


def _examples(items, limit=5):
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown + (", ..." if len(items) > limit else "")


def check_embeddings(ids, embeddings, source="<embeddings>"):
    """Validate ids and embeddings and return them in canonical form.

    Arguments
    ---------
    ids : sequence of str
        One id per row; unique, non-empty, without whitespace (trial lists
        are whitespace-separated).
    embeddings : torch.Tensor or numpy.ndarray
        ``[N, D]`` real matrix.
    source : str
        Name used in error messages (usually the file).

    Returns
    -------
    ids : list of str
    embeddings : torch.Tensor
        Contiguous float32 ``[N, D]`` on the input's device.

    Raises
    ------
    ScoringError
        On a shape mismatch, a duplicate or malformed id, a NaN/inf value or
        an all-zero row (cosine scoring needs a direction).

    Example
    -------
    >>> ids, emb = check_embeddings(["a", "b"], torch.eye(2))
    >>> emb.dtype
    torch.float32
    >>> check_embeddings(["a", "a"], torch.eye(2), "e.npz")
    Traceback (most recent call last):
    ...
    emotion_invariant.scoring.errors.ScoringError: e.npz: duplicate id(s) 'a'
    """
    if isinstance(ids, (str, bytes)):
        raise ScoringError(f"{source}: ids must be a list of str, not a str")
    ids = [x.item() if isinstance(x, np.generic) else x for x in ids]
    bad = [x for x in ids if not isinstance(x, str)]
    if bad:
        raise ScoringError(f"{source}: ids must be str, got {_examples(bad)}")
    malformed = [
        x for x in ids if not x or len(x.split()) != 1 or x != x.strip()
    ]
    if malformed:
        raise ScoringError(
            f"{source}: empty id or id with whitespace: {_examples(malformed)}"
        )
    embeddings = torch.as_tensor(embeddings)
    if embeddings.dim() != 2:
        raise ScoringError(
            f"{source}: embeddings must be [N, D], got shape "
            f"{tuple(embeddings.shape)}"
        )
    if embeddings.shape[0] != len(ids) or not ids or embeddings.shape[1] < 1:
        raise ScoringError(
            f"{source}: {len(ids)} ids for embeddings of shape "
            f"{tuple(embeddings.shape)}; need one id per row and N, D >= 1"
        )
    if embeddings.is_complex() or embeddings.dtype == torch.bool:
        raise ScoringError(f"{source}: embeddings must be real numbers")
    if len(set(ids)) != len(ids):
        seen, dups = set(), []
        for x in ids:
            if x in seen and x not in dups:
                dups.append(x)
            seen.add(x)
        raise ScoringError(f"{source}: duplicate id(s) {_examples(dups)}")
    embeddings = embeddings.to(torch.float32).contiguous()
    finite = torch.isfinite(embeddings).all(dim=1)
    if not bool(finite.all()):
        rows = torch.nonzero(~finite).squeeze(1).tolist()
        raise ScoringError(
            f"{source}: {len(rows)} embedding(s) with NaN or inf values: "
            f"{_examples([ids[i] for i in rows])}"
        )
    zero = ~embeddings.any(dim=1)
    if bool(zero.any()):
        rows = torch.nonzero(zero).squeeze(1).tolist()
        raise ScoringError(
            f"{source}: {len(rows)} all-zero embedding(s), which have no "
            f"cosine score: {_examples([ids[i] for i in rows])}"
        )
    return ids, embeddings


def save_embeddings(path, ids, embeddings):
    """Write ids and embeddings to ``.npz`` or ``.pt`` (by extension).

    The file appears only once completely written.

    Arguments
    ---------
    path : str
        Destination ending in ``.npz`` or ``.pt``.
    ids : sequence of str
        One id per row.
    embeddings : torch.Tensor or numpy.ndarray
        ``[N, D]``; stored as float32.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "emb.npz")
    >>> save_embeddings(path, ["u1", "u2"], torch.ones(2, 3))
    >>> load_embeddings(path)[0]
    ['u1', 'u2']
    """
    ext = _extension(path)
    ids, embeddings = check_embeddings(ids, embeddings, os.fspath(path))
    embeddings = embeddings.detach().cpu()
    with atomic_open(path, "wb") as f:
        if ext == ".npz":
            np.savez(
                f, ids=np.array(ids, dtype=str), embeddings=embeddings.numpy()
            )
        else:
            torch.save({"ids": ids, "embeddings": embeddings}, f)


def load_embeddings(path):
    """Read an embedding file written by :func:`save_embeddings`.

    Arguments
    ---------
    path : str
        ``.npz`` or ``.pt`` file with ``ids`` and ``embeddings``.

    Returns
    -------
    ids : list of str
    embeddings : torch.Tensor
        float32 ``[N, D]`` on the CPU.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "emb.pt")
    >>> save_embeddings(path, ["a"], [[3.0, 4.0]])
    >>> load_embeddings(path)[1]
    tensor([[3., 4.]])
    """
    ext = _extension(path)
    if not os.path.isfile(path):
        raise ScoringError(f"embedding file not found: {path}")
    try:
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as data:
                content = {key: data[key] for key in data.files}
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # numpy, zipfile and pickle raise many types
        if "weights_only" in str(err):
            # torch advises weights_only=False, which runs whatever code the
            # file holds: that advice is never passed on.
            raise ScoringError(
                f"{path}: unreadable embedding file: not tensors saved with "
                "torch.save (corrupt, or another format)"
            ) from None
        raise ScoringError(f"{path}: unreadable embedding file: {err}") from err
    if not isinstance(content, dict) or not {"ids", "embeddings"} <= set(
        content
    ):
        found = sorted(content) if isinstance(content, dict) else type(content)
        raise ScoringError(
            f"{path}: expected 'ids' and 'embeddings', found {found}"
        )
    ids = content["ids"]
    if isinstance(ids, np.ndarray):
        if ids.dtype.kind != "U" or ids.ndim != 1:
            raise ScoringError(f"{path}: 'ids' must be a 1-D array of str")
        ids = ids.tolist()
    return check_embeddings(ids, content["embeddings"], path)
