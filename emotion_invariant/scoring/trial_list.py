"""Trial lists and score files in SpeechBrain's verification format.

A trial list has one trial a line, ``label enrol_id test_id [condition]``.
Ids are held as integer codes into one vocabulary, so tens of millions of
trials cost a few bytes each and map to embedding rows once per distinct id,
never once per trial. Score files are ``enrol test label score`` lines, the
order SpeechBrain's verification recipe writes.
"""

import dataclasses
import os

import numpy as np
import torch

from emotion_invariant.atomic import atomic_open
from emotion_invariant.data.manifest import ManifestError

_LABELS = {"0": False, "1": True, 0: False, 1: True}
_BLOCK_BYTES = 1 << 26  # bounds the strings alive at once while reading


@dataclasses.dataclass(frozen=True, eq=False)
class Trials:
    """A verification trial list held as integer codes.

    Arguments
    ---------
    labels : numpy.ndarray
        bool ``[T]``, True for target trials.
    enrol : numpy.ndarray
        int64 ``[T]``, index into ``names``.
    test : numpy.ndarray
        int64 ``[T]``, index into ``names``.
    names : list of str
        Utterance ids: enrolment ids in order of first appearance, then
        the test ids not among them.
    condition : numpy.ndarray or None
        int64 ``[T]``, index into ``conditions``; None without a fourth
        column.
    conditions : list of str
        Condition values, in order of first appearance.
    source : str
        Where the trials came from, for error messages.

    Example
    -------
    >>> trials = Trials.from_records([(1, "a", "b", "neu-ang"),
    ...                               (0, "a", "c", "neu-neu")])
    >>> len(trials), trials.names, trials.conditions
    (2, ['a', 'b', 'c'], ['neu-ang', 'neu-neu'])
    >>> list(trials.records())[1]
    (0, 'a', 'c', 'neu-neu')
    """

    labels: np.ndarray
    enrol: np.ndarray
    test: np.ndarray
    names: list
    condition: np.ndarray = None
    conditions: list = dataclasses.field(default_factory=list)
    source: str = "<trials>"

    def __len__(self):
        return len(self.labels)

    @classmethod
    def from_records(cls, records, source="<trials>"):
        """Build from ``(label, enrol, test[, condition])`` tuples.

        Labels may be 0/1, True/False or "0"/"1".

        Example
        -------
        >>> Trials.from_records([(2, "a", "b")], "list")
        Traceback (most recent call last):
        ...
        emotion_invariant.data.manifest.ManifestError: list trial 1: \
label 2 is not 0 or 1
        """
        builder = _Builder(source, "trial")
        records = [tuple(r) for r in records]
        if records:
            width = len(records[0])
            for index, record in enumerate(records):
                if len(record) != width or width not in (3, 4):
                    raise ManifestError(
                        f"{source} trial {index + 1}: expected the same 3 or 4 "
                        f"fields as trial 1 (label enrol test [condition]), "
                        f"got {len(record)}"
                    )
            columns = [list(c) for c in zip(*records)]
            columns[1:] = [[str(x) for x in col] for col in columns[1:]]
            builder.add(columns)
        return builder.finish()

    def records(self):
        """Yield ``(label, enrol_id, test_id[, condition])`` tuples.

        Example
        -------
        >>> list(Trials.from_records([(1, "a", "b")]).records())
        [(1, 'a', 'b')]
        """
        names = self.names
        rows = zip(
            self.labels.tolist(), self.enrol.tolist(), self.test.tolist()
        )
        if self.condition is None:
            for label, e, t in rows:
                yield int(label), names[e], names[t]
        else:
            conds = self.condition.tolist()
            for (label, e, t), c in zip(rows, conds):
                yield int(label), names[e], names[t], self.conditions[c]

    def subset(self, keep):
        """The trials where boolean ``keep`` is True.

        The id vocabulary shrinks to the ids the kept trials use.

        Example
        -------
        >>> trials = Trials.from_records([(1, "a", "b"), (0, "a", "c")])
        >>> kept = trials.subset(np.array([False, True]))
        >>> list(kept.records()), kept.names
        ([(0, 'a', 'c')], ['a', 'c'])
        """
        keep = np.asarray(keep, dtype=bool)
        enrol, test = self.enrol[keep], self.test[keep]
        used = np.zeros(len(self.names), dtype=bool)
        used[enrol] = True
        used[test] = True
        code = np.cumsum(used) - 1
        return dataclasses.replace(
            self,
            labels=self.labels[keep],
            enrol=code[enrol],
            test=code[test],
            names=[n for n, u in zip(self.names, used) if u],
            condition=None if self.condition is None else self.condition[keep],
        )


class _Builder:
    """Accumulates token columns into codes, validating as it goes."""

    def __init__(self, source, unit):
        self.source, self.unit = source, unit
        self.vocab, self.cond_vocab = {}, {}
        self.parts = {"labels": [], "enrol": [], "test": [], "condition": []}
        self.width = None

    def _code(self, vocab, tokens):
        return np.fromiter(
            (vocab.setdefault(t, len(vocab)) for t in tokens),
            dtype=np.int64,
            count=len(tokens),
        )

    def add(self, columns):
        """Add one block of columns (all blocks have the same width)."""
        self.width = len(columns)
        labels = columns[0]
        try:
            codes = [_LABELS[x] for x in labels]
        except (KeyError, TypeError):
            index = next(i for i, x in enumerate(labels) if not _is_label(x))
            raise ManifestError(
                f"{self.source} {self.unit} {index + 1}: label "
                f"{labels[index]!r} is not 0 or 1"
            ) from None
        self.parts["labels"].append(np.array(codes, dtype=bool))
        self.parts["enrol"].append(self._code(self.vocab, columns[1]))
        self.parts["test"].append(self._code(self.vocab, columns[2]))
        if self.width == 4:
            self.parts["condition"].append(
                self._code(self.cond_vocab, columns[3])
            )

    def finish(self):
        if not self.parts["labels"]:
            raise ManifestError(f"{self.source}: the trial list is empty")
        joined = {
            k: np.concatenate(v) if v else None for k, v in self.parts.items()
        }
        return Trials(
            labels=joined["labels"],
            enrol=joined["enrol"],
            test=joined["test"],
            names=list(self.vocab),
            condition=joined["condition"],
            conditions=list(self.cond_vocab),
            source=self.source,
        )


def _is_label(x):
    try:
        return x in _LABELS
    except TypeError:
        return False


def _field_error(path):
    """The error for the first line with a wrong number of fields."""
    first = None
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in (3, 4):
                return ManifestError(
                    f"{path} line {number}: expected 3 or 4 fields (label "
                    f"enrol_id test_id [condition]), found {len(fields)}: "
                    f"{line.strip()!r}"
                )
            if first is None:
                first = (number, len(fields))
            elif len(fields) != first[1]:
                return ManifestError(
                    f"{path} line {number}: {len(fields)} fields, but line "
                    f"{first[0]} has {first[1]}; every line needs the same "
                    "(label enrol_id test_id [condition])"
                )
    raise AssertionError("no malformed line found")


def read_trials(path):
    """Read a trial list ``label enrol_id test_id [condition]``.

    Blank lines are skipped. Every line has the same number of fields.

    Arguments
    ---------
    path : str
        The trial list.

    Returns
    -------
    Trials

    Raises
    ------
    ManifestError
        If the file is missing or empty, a line has the wrong number of
        fields, or a label is not 0 or 1; the message names the line.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "trials.txt")
    >>> _ = open(path, "w").write("1 a b neu-ang\\n0 a c neu-neu\\n")
    >>> read_trials(path).labels
    array([ True, False])
    """
    if not os.path.isfile(path):
        raise ManifestError(f"trial list not found: {path}")
    builder = _Builder(path, "line")
    with open(path) as f:
        while True:
            lines = f.readlines(_BLOCK_BYTES)
            if not lines:
                break
            counts = list(map(len, map(str.split, lines)))
            width = builder.width or next((c for c in counts if c), None)
            if width is None:
                continue
            if set(counts) - {0} != {width} or width not in (3, 4):
                raise _field_error(path)
            if 0 in counts:
                lines = [line for line, c in zip(lines, counts) if c]
            tokens = "".join(lines).split()
            try:
                builder.add([tokens[i::width] for i in range(width)])
            except ManifestError:
                _label_error(path)
    return builder.finish()


def _label_error(path):
    """Find the first bad label by line number (blocks do not track it)."""
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if fields and fields[0] not in ("0", "1"):
                raise ManifestError(
                    f"{path} line {number}: label {fields[0]!r} is not 0 or 1"
                )
    raise AssertionError("no bad label found")


def as_trials(trials):
    """Accept a :class:`Trials`, a trial-list path or a list of records.

    Example
    -------
    >>> len(as_trials([(1, "a", "b"), (0, "a", "c")]))
    2
    """
    if isinstance(trials, Trials):
        return trials
    if isinstance(trials, (str, os.PathLike)):
        return read_trials(os.fspath(trials))
    return Trials.from_records(trials)


def _name_rows(trials, ids):
    index = {x: i for i, x in enumerate(ids)}
    return np.array([index.get(n, -1) for n in trials.names], dtype=np.int64)


def trial_rows(trials, ids, source="<embeddings>"):
    """Embedding rows of the trials' utterance ids, checked once per id.

    Arguments
    ---------
    trials : Trials
    ids : sequence of str
        The embedding file's ids.
    source : str
        Name of the embedding file, for the error message.

    Returns
    -------
    torch.Tensor
        int64 ``[len(trials.names)]``: the row of each of ``trials.names``,
        -1 for a name that no trial uses any more and ``ids`` lacks. A
        trial's rows are ``rows[trials.enrol]`` and ``rows[trials.test]``.

    Raises
    ------
    ManifestError
        If any trial names an id missing from ``ids``; the message counts
        them and lists the first few.

    Example
    -------
    >>> trials = Trials.from_records([(1, "a", "b"), (0, "b", "c")])
    >>> trial_rows(trials, ["c", "b", "a"])
    tensor([2, 1, 0])
    >>> trial_rows(trials, ["a", "b"], "emb.npz")
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: <trials>: 1 trial(s) \
name 1 id(s) not in emb.npz, e.g. 'c' (first on trial 2); drop them with \
--skip-missing (drop_missing in Python)
    """
    rows = _name_rows(trials, ids)
    if (rows < 0).any():
        bad = (rows[trials.enrol] < 0) | (rows[trials.test] < 0)
        if bad.any():
            used = np.union1d(trials.enrol[bad], trials.test[bad])
            missing = [trials.names[i] for i in used if rows[i] < 0]
            first = int(np.argmax(bad)) + 1
            shown = ", ".join(repr(x) for x in missing[:5])
            raise ManifestError(
                f"{trials.source}: {int(bad.sum())} trial(s) name "
                f"{len(missing)} id(s) not in {source}, e.g. {shown} "
                f"(first on trial {first}); drop them with --skip-missing "
                "(drop_missing in Python)"
            )
    return torch.from_numpy(rows)


def drop_missing(trials, ids):
    """Drop the trials that name an id not in ``ids``.

    Arguments
    ---------
    trials : Trials
    ids : sequence of str

    Returns
    -------
    kept : Trials
    dropped : int
        How many trials were dropped.

    Example
    -------
    >>> trials = Trials.from_records([(1, "a", "b"), (0, "a", "x")])
    >>> kept, dropped = drop_missing(trials, ["a", "b"])
    >>> len(kept), dropped
    (1, 1)
    """
    rows = _name_rows(trials, ids)
    keep = (rows[trials.enrol] >= 0) & (rows[trials.test] >= 0)
    return trials.subset(keep), int((~keep).sum())


def write_scores(path, trials, scores):
    """Write ``enrol test label score`` lines, atomically.

    Arguments
    ---------
    path : str
        The score file.
    trials : Trials or str or list of tuple
        The scored trials (see :func:`as_trials`).
    scores : torch.Tensor or numpy.ndarray
        ``[T]``, aligned with ``trials``; written with 9 significant digits,
        enough to read float32 back exactly.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "scores.txt")
    >>> write_scores(path, Trials.from_records([(1, "a", "b")]), [0.25])
    >>> open(path).read()
    'a b 1 0.25\\n'
    """
    trials = as_trials(trials)
    scores = torch.as_tensor(scores).detach().cpu().reshape(-1).tolist()
    if len(scores) != len(trials):
        raise ValueError(
            f"{len(scores)} scores for {len(trials)} trials in {trials.source}"
        )
    names = trials.names
    columns = (
        trials.enrol.tolist(),
        trials.test.tolist(),
        trials.labels.astype(np.int8).tolist(),
        scores,
    )
    step = 1 << 16
    with atomic_open(path) as f:
        for start in range(0, len(scores), step):
            chunk = zip(*(c[start : start + step] for c in columns))
            f.write(
                "".join(
                    f"{names[e]} {names[t]} {label} {s:.9g}\n"
                    for e, t, label, s in chunk
                )
            )
