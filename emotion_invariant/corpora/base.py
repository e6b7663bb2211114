"""A corpus declared once: the shared base of the corpus modules.

Each corpus module parses its own layout into rows and declares a
:class:`Corpus`: how to parse it, its own options and what they mean,
what its manifest's own columns keep, its licence. :meth:`Corpus.preparer`
makes SpeechBrain's ``prepare_<corpus>(data_folder, save_folder, ...)`` of
it, with the options every corpus shares, their checks and their
documentation; :func:`run` is what every preparer runs: skip when done,
else parse, read the audio headers and finish
(:func:`emotion_invariant.corpora.steps.finish`).
"""

import dataclasses
import inspect
import logging
import os
import tempfile
import textwrap
from typing import Callable, Optional

from emotion_invariant.corpora.files import Problems, add_durations
from emotion_invariant.corpora.record import (
    already_prepared,
    common_settings,
    corpus_content,
    saved_outputs,
)
from emotion_invariant.corpora.steps import finish

logger = logging.getLogger(__name__)

#: The options every corpus shares, in the order of the preparers'
#: signatures, with their defaults.
SHARED = {
    "seed": 0,
    "held_out": 4,
    "test_fraction": 0.2,
    "dev_fraction": 0.1,
    "max_per_condition": None,
    "skip_bad": False,
    "jobs": 1,
}

#: Type and meaning of the shared options, for the preparers'
#: documentation; ``test_fraction`` and ``dev_fraction`` go together.
OPTION_DOCS = {
    "save_folder": ("str", "Where outputs go."),
    "seed": ("int", "Seed of folds, splits and trials."),
    "held_out": ("int", "Speakers per fold."),
    "test_fraction, dev_fraction": (
        "float",
        "Speaker fractions of test and dev.",
    ),
    "max_per_condition": (
        "int, optional",
        "Cap on target (and non-target) trials per condition.",
    ),
    "skip_bad": (
        "bool",
        "Skip (and count) unexpected names and unreadable files instead of "
        "stopping at the first one.",
    ),
    "jobs": ("int", "Threads reading audio headers."),
}


def _entry(name, kind, doc):
    """One ``Arguments`` entry: name and type, then the wrapped text."""
    text = textwrap.fill(doc, 72, initial_indent="    ", break_on_hyphens=False)
    return f"{name} : {kind}\n" + text.replace("\n", "\n    ")


_EXAMPLE = """
Returns
-------
dict
    Role -> path of each output.

Example
-------
>>> from emotion_invariant.corpora.files import CorpusError
>>> try:
...     prepare_{corpus}("/nonexistent/{corpus}", "/tmp/out")
... except CorpusError as err:
...     print(err)  # doctest: +ELLIPSIS
/nonexistent/{corpus}: no such folder; expected ...
"""


@dataclasses.dataclass(frozen=True)
class Option:
    """An option of one corpus's preparer, beyond the shared ones.

    Arguments
    ---------
    name : str
        The keyword argument.
    default : object
        Its default.
    kind : str
        Its type, for the documentation.
    doc : str
        What it does, for the documentation.
    choices : tuple
        The values it takes, when they are few (checked before any work).
    parse : bool
        Whether the corpus's parse function takes it.

    Example
    -------
    >>> Option("label", "annotators", "str", "Whose label.",
    ...        ("annotators", "speaker")).check("acted")
    Traceback (most recent call last):
    ...
    ValueError: label must be 'annotators' or 'speaker', got 'acted'
    """

    name: str
    default: object
    kind: str
    doc: str
    choices: tuple = ()
    parse: bool = False

    def check(self, value):
        """Refuse a value outside :attr:`choices`."""
        if self.choices and value not in self.choices:
            allowed = " or ".join(map(repr, self.choices))
            raise ValueError(f"{self.name} must be {allowed}, got {value!r}")


def official_split(doc):
    """The ``split`` option of a corpus with an official split of its own.

    Example
    -------
    >>> official_split("...").choices
    ('speakers', 'official')
    """
    return Option("split", "speakers", "str", doc, ("speakers", "official"))


@dataclasses.dataclass(frozen=True)
class Corpus:
    """What a corpus module declares; :meth:`preparer` does the rest.

    Arguments
    ---------
    name : str
        Corpus name: file prefix, and ``CORPUS`` on the command line.
    parse : callable
        ``(data_folder, problems, **options) -> rows``: finds the corpus
        root under ``data_folder`` and returns rows with ``ID, wav,
        spk_id, emo`` and whatever else the corpus gives, but no duration
        yet; it takes the options marked ``parse``.
    summary : str
        The first line of the preparer's documentation.
    root : str
        What ``data_folder`` is, for the documentation.
    columns : str
        What the manifest's own columns keep, for the documentation.
    licence : str
        The corpus's licence, for the documentation.
    options : tuple of Option
        The corpus's own options, before the shared ones.
    shared : tuple of str
        Which of :data:`SHARED` it takes (all by default).
    docs : dict
        Type and meaning of shared options where the corpus gives them
        another (keys as in :data:`OPTION_DOCS`).
    notes : str
        More documentation, after what the preparer writes.
    official : callable, optional
        ``row -> split`` under ``split="official"`` (then one of
        :attr:`options` is ``split``, see :func:`official_split`).
    plan : callable, optional
        ``options -> dict``: checks the options and gives what the corpus
        fixes: ``fold_of``, ``split_of``, ``presplit`` (see
        :func:`emotion_invariant.corpora.steps.finish`) and ``then``
        (``rows -> rows``, after parsing).
    sample : dict
        A tiny corpus as distributed, relative path -> text (audio files
        empty: parsing reads no audio), for :meth:`example`.

    Example
    -------
    >>> Corpus("demo", print, "Prepare demo.", "A folder.", "", "none",
    ...        options=(Option("seed", 1, "int", "..."),))
    Traceback (most recent call last):
    ...
    ValueError: demo: option seed is shared by every corpus
    """

    name: str
    parse: Callable
    summary: str
    root: str
    columns: str
    licence: str
    options: tuple = ()
    shared: tuple = tuple(SHARED)
    docs: dict = dataclasses.field(default_factory=dict)
    notes: str = ""
    official: Optional[Callable] = None
    plan: Optional[Callable] = None
    sample: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        own = {option.name: option for option in self.options}
        taken = {"data_folder", "save_folder", *SHARED}
        for option in self.options:
            if option.name in taken:
                raise ValueError(
                    f"{self.name}: option {option.name} is shared by every "
                    "corpus"
                )
            if option.choices and option.default not in option.choices:
                raise ValueError(
                    f"{self.name}: option {option.name} defaults to "
                    f"{option.default!r}, not one of its choices"
                )
        unknown = [k for k in self.shared if k not in SHARED]
        unknown += [k for k in self.docs if k not in OPTION_DOCS]
        if unknown:
            raise ValueError(
                f"{self.name}: {', '.join(unknown)} not among the shared "
                f"options ({', '.join(SHARED)})"
            )
        if self.official and "official" not in getattr(
            own.get("split"), "choices", ()
        ):
            raise ValueError(
                f"{self.name}: an official split needs a split option that "
                "takes 'official' (see official_split)"
            )

    def example(self, *fields, **options):
        """Fields of the first row parsed from :attr:`sample`.

        Arguments
        ---------
        *fields : str
            The columns to give.
        **options
            Options of the parse function.

        Returns
        -------
        tuple

        Example
        -------
        >>> def parse(data_folder, problems):
        ...     return [{"ID": name[:-4]} for name in os.listdir(data_folder)]
        >>> Corpus("demo", parse, "", "", "", "", sample={"a1.wav": ""}
        ...        ).example("ID")
        ('a1',)
        """
        with tempfile.TemporaryDirectory() as root:
            for name, text in self.sample.items():
                path = os.path.join(root, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            row = self.parse(root, Problems(), **options)[0]
        return tuple(row[field] for field in fields)

    def signature(self):
        """The preparer's signature: folders, own options, shared ones."""
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params = [
            inspect.Parameter("data_folder", kind),
            inspect.Parameter("save_folder", kind),
        ]
        params += [
            inspect.Parameter(o.name, kind, default=o.default)
            for o in self.options
        ]
        params += [
            inspect.Parameter(name, kind, default=SHARED[name])
            for name in self.shared
        ]
        return inspect.Signature(params)

    def doc(self):
        """The preparer's documentation, NumPy style."""
        n = self.name
        lines = [
            self.summary,
            "",
            textwrap.fill(
                f"Writes ``{n}.csv`` ({self.columns}), ``{n}_folds.json``, "
                f"``{n}_splits.json``, ``{n}_trials.txt`` and per-split "
                "manifests into ``save_folder``; skips the work when a "
                "previous run with the same options finished. "
                + (self.notes + " " if self.notes else "")
                + f"Licence of the corpus: {self.licence}.",
                72,
                break_on_hyphens=False,
            ),
            "",
            "Arguments",
            "---------",
            _entry("data_folder", "str", self.root),
        ]
        docs = {**OPTION_DOCS, **self.docs}
        entries = {"save_folder": docs["save_folder"]}
        entries.update({o.name: (o.kind, o.doc) for o in self.options})
        for name in self.shared:
            if name in ("test_fraction", "dev_fraction"):
                name = "test_fraction, dev_fraction"
            entries.setdefault(name, docs[name])
        lines += [_entry(name, *doc) for name, doc in entries.items()]
        return "\n".join(lines) + "\n" + _EXAMPLE.replace("{corpus}", n)

    def run_options(self, options):
        """Check the options; :func:`run`'s keywords that depend on them.

        Arguments
        ---------
        options : dict
            Every option of the preparer but the folders.

        Returns
        -------
        dict
            ``fold_of``, ``split_of``, ``presplit`` where the corpus fixes
            them, and ``then`` (``rows -> rows``, after parsing).
        """
        for option in self.options:
            option.check(options[option.name])
        if self.plan is not None:
            return self.plan(options)
        if self.official and options["split"] == "official":

            def then(rows):
                for row in rows:
                    row["split"] = self.official(row)
                return rows

            return {"then": then, "presplit": True}
        return {}

    def preparer(self):
        """``prepare_<name>(data_folder, save_folder, **options)``.

        Checks the options, then prepares the corpus (:func:`run`) with
        every option but the folders identifying the run.

        Example
        -------
        >>> import tempfile
        >>> def parse(data_folder, problems):
        ...     problems("unexpected file name", "x.wav: bad")
        >>> prepare = Corpus("demo", parse, "Prepare demo.", "A folder.",
        ...                  "", "none").preparer()
        >>> prepare(tempfile.mkdtemp(), tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        emotion_invariant.corpora.files.CorpusError: x.wav: bad \
(--skip-bad, or skip_bad=True, skips such files)
        """
        signature = self.signature()
        parsed = [o.name for o in self.options if o.parse]

        def prepare(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            options = dict(bound.arguments)
            data_folder = options.pop("data_folder")
            save_folder = options.pop("save_folder")
            plan = self.run_options(options)
            then = plan.pop("then", None)
            keywords = {name: options[name] for name in parsed}

            def parse(problems):
                rows = self.parse(data_folder, problems, **keywords)
                return rows if then is None else then(rows)

            return run(
                self.name, data_folder, save_folder, parse, options, **plan
            )

        prepare.__name__ = prepare.__qualname__ = f"prepare_{self.name}"
        prepare.__module__ = self.parse.__module__
        prepare.__signature__ = signature
        prepare.__doc__ = self.doc()
        return prepare


def run(
    corpus,
    data_folder,
    save_folder,
    parse,
    options,
    fold_of=None,
    split_of=None,
    presplit=False,
):
    """Prepare a corpus: skip if done, else parse, read headers, finish.

    Arguments
    ---------
    corpus : str
        Corpus name (file prefix).
    data_folder, save_folder : str
        Where the corpus is, and where outputs go.
    parse : callable
        ``problems -> rows``: finds the corpus root under ``data_folder``
        and returns rows with ``ID, wav, spk_id, emo`` and whatever else
        the corpus gives, but no duration yet.
    options : dict
        Every option of the corpus's ``prepare_*`` function: at least
        ``seed, max_per_condition, skip_bad, jobs``, and ``held_out,
        test_fraction, dev_fraction`` unless folds and splits are given.
        All but ``jobs`` identify the run.
    fold_of, split_of, presplit
        See :func:`emotion_invariant.corpora.steps.finish`.

    Returns
    -------
    dict
        Role -> path of the outputs.

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> corpus = tempfile.mkdtemp()
    >>> def parse(problems):
    ...     rows = []
    ...     for spk in "abcd":
    ...         for i, emo in enumerate(("neu", "neu", "sad", "sad")):
    ...             wav = os.path.join(corpus, f"{spk}{i}.wav")
    ...             soundfile.write(wav, numpy.zeros(1600), 16000)
    ...             rows.append({"ID": f"{spk}{i}", "wav": wav,
    ...                          "spk_id": spk, "emo": emo})
    ...     return rows
    >>> options = dict(seed=0, max_per_condition=None, skip_bad=False)
    >>> out = run("demo", corpus, corpus, parse, options)
    >>> len(open(out["manifest"]).readlines())  # header and 16 rows
    17
    >>> run("demo", corpus, corpus, parse, options) == out  # skipped
    True
    """
    options = dict(options)
    jobs = options.pop("jobs", 1)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    settings = common_settings(data_folder, **options)
    if already_prepared(corpus, save_folder, settings, data_folder):
        logger.info("%s: already prepared in %s, skipping", corpus, save_folder)
        return saved_outputs(corpus, save_folder)
    problems = Problems(options["skip_bad"])
    rows = parse(problems)
    # Taken once parsing has found the corpus root, so that a wrong folder
    # (say, /) is refused before anything walks it.
    content = corpus_content(corpus, data_folder, save_folder)
    rows = add_durations(rows, problems, jobs, desc=f"{corpus} headers")
    return finish(
        corpus,
        rows,
        save_folder,
        settings,
        problems,
        seed=options["seed"],
        held_out=options.get("held_out", 4),
        test_fraction=options.get("test_fraction", 0.2),
        dev_fraction=options.get("dev_fraction", 0.1),
        max_per_condition=options["max_per_condition"],
        fold_of=fold_of,
        split_of=split_of,
        presplit=presplit,
        content=content,
    )
