"""Hyperpyyaml files that extend one base file by overrides.

A recipe's variants (baseline, emotion-invariant, each ablation row) are sets
of overrides on one base yaml, never copies of it. A variant file names its
base with a ``base:`` key and lists plain ``key: value`` overrides::

    base: ecapa_base.yaml
    copypaste_prob: 1.0
    erl_weight: 1.0

A full file can take shared keys and objects from other full files
with one ``include:`` line, which stands for those files' text: the
emotion recipes' corpus folds, encoder and features are written once, in
the files that the emotion recognition base and the pretraining both
include::

    __set_seed: !apply:speechbrain.utils.seed_everything [!ref <seed>]
    include: [folds.yaml, encoder.yaml]
    emo_hidden: 128

A key is written once: an included key written again is an error (YAML's
duplicate key); a variant or the command line overrides it as any other.

Command-line overrides apply on top of the variant's. Every method and
training key in :data:`RULES` is checked (type and range) when the file
loads, before anything is built or run.
"""

import datetime
import io
import os
import re

import ruamel.yaml
from hyperpyyaml import load_hyperpyyaml, resolve_references

from emotion_invariant.atomic import atomic_open


class HparamsError(ValueError):
    """A hyperparameter file or override that cannot be used."""


#: The type and allowed range of every method and training key a recipe
#: reads: ``number``, ``int`` or ``bool``, a trailing ``?`` when null is
#: allowed, and an interval (``[`` and ``]`` include the bound). A recipe
#: without a key skips its rule.
RULES = {
    # methods: weights are never negative (a negative weight is not "off")
    "erl_weight": ("number", "[0, inf)"),
    "aam_weight": ("number", "[0, inf)"),
    "supcon_weight": ("number", "[0, inf)"),
    "distill_weight": ("number", "[0, inf)"),
    "l2sp_weight": ("number", "[0, inf)"),
    "adv_weight": ("number", "[0, inf)"),
    "entropy_weight": ("number", "[0, inf)"),
    "multitask_weight": ("number", "[0, inf)"),
    "copypaste_prob": ("number", "[0, 1]"),
    "mask_ratio": ("number", "[0, 1]"),
    "mask_prob": ("number", "[0, 1]"),
    "mask_span": ("int", "[1, inf)"),
    "mask_anchors": ("bool", None),
    "supcon_temperature": ("number", "(0, inf)"),
    "supcon_margin": ("number", "[0, 1]"),
    "temperature": ("number", "(0, inf)"),
    "margin": ("number", "[0, 1]"),
    "extra_views": ("int", "[0, inf)"),
    "grl_lambda": ("number", "[0, inf)"),
    "grl_gamma": ("number", "(0, inf)"),
    "grl_warmup": ("number", "[0, 1)"),
    "adv_lr_factor": ("number", "(0, inf)"),
    "adv_memory": ("int", "[0, inf)"),
    "adv_replay": ("int", "[1, inf)"),
    "adv_input_norm": ("bool", None),
    "emo_input_norm": ("bool", None),
    "class_balanced": ("bool", None),
    "emo_dropout": ("number", "[0, 1)"),
    "label_fraction": ("number", "(0, 1]"),
    "emotion_nap_dims": ("int", "[0, inf)"),
    "nap_utterances": ("int", "[1, inf)"),
    "scoring_backend": (
        "choice",
        "none emotion_nap within_speaker_nap wccn lda consistency "
        "within_speaker_nap+wccn emotion_nap+wccn",
    ),
    "backend_dims": ("int", "[1, inf)"),
    "backend_shrinkage": ("number", "[0, 1]"),
    # fine-tuning
    "freeze_blocks": ("int", "[0, 6]"),
    "freeze_bn": ("bool", None),
    "head_warmup_steps": ("int", "[0, inf)"),
    "imprint_utterances": ("int", "[1, inf)"),
    # training
    "lr": ("number", "(0, inf)"),
    "lr_final": ("number", "(0, inf)"),
    "weight_decay": ("number", "[0, inf)"),
    "number_of_epochs": ("int", "[0, inf)"),
    "batch_size": ("int", "[1, inf)"),
    "eval_batch_size": ("int", "[1, inf)"),
    "speakers_per_batch": ("int?", "[1, inf)"),
    "utterances_per_speaker": ("int", "[1, inf)"),
    "anchors_per_speaker": ("int", "[1, inf)"),
    "utterances_per_epoch": ("int?", "[1, inf)"),
    "sample_rate": ("int", "[1, inf)"),
    "sentence_len": ("number", "(0, inf)"),
    "max_train_len": ("number", "(0, inf)"),
    "min_duration": ("number", "[0, inf)"),
    "trim_silence_db": ("number?", "(0, inf)"),
    "num_workers": ("int", "[0, inf)"),
    "ckpt_interval_steps": ("int", "[0, inf)"),
    "select_from_epoch": ("int", "[1, inf)"),
    "skip_bad": ("bool", None),
    "skip_prep": ("bool", None),
    # evaluation and folds
    "n_folds": ("int", "[2, inf)"),
    "fold_dev_fraction": ("number", "(0, 1)"),
    "dev_trials_per_condition": ("int", "[1, inf)"),
    "max_trials_per_condition": ("int?", "[1, inf)"),
    "score_topk": ("int", "[1, inf)"),
    "probe_held_out": ("number", "(0, 1)"),
    "probe_per_speaker": ("int?", "[1, inf)"),
    "probe_c": ("number", "(0, inf)"),
    "centred_backend": ("bool", None),
    # emotion recognition on a frozen encoder's layers
    "frozen_layers": ("bool", None),
    "head_type": ("choice", "linear mlp"),
    "layer_dim": ("int", "[1, inf)"),
    "feature_batch_size": ("int", "[1, inf)"),
    "speaker_norm": ("choice", "none centre centre+scale"),
    "speaker_stats": ("choice", "transductive enrolment"),
}

_TYPES = {
    "number": (int, float),
    "int": (int,),
    "bool": (bool,),
}


def _in_interval(value, interval):
    low, high = (part.strip() for part in interval[1:-1].split(","))
    low, high = float(low), float(high)
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below


def check_hparams(values, source="hyperparameters"):
    """Check every key of :data:`RULES` that ``values`` holds.

    Arguments
    ---------
    values : dict
        Loaded hyperparameters, or override values.
    source : str
        Where the values come from, for the error message.

    Raises
    ------
    HparamsError
        Naming the key, the value and its allowed type and range.

    Example
    -------
    >>> check_hparams({"copypaste_prob": 0.5, "other": "anything"})
    >>> check_hparams({"scoring_backend": "pca"}, "overrides")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.hparams.HparamsError: overrides: scoring_backend: 'pca' \
is not valid; expected one of: none, emotion_nap, ...
    >>> check_hparams({"copypaste_prob": "abc"}, "overrides")
    Traceback (most recent call last):
    ...
    emotion_invariant.hparams.HparamsError: overrides: copypaste_prob: 'abc' \
is not valid; expected a number in [0, 1]
    """
    for key, (kind, interval) in RULES.items():
        if key not in values:
            continue
        value = values[key]
        if kind == "choice":
            if value not in interval.split():
                raise HparamsError(
                    f"{source}: {key}: {value!r} is not valid; expected one "
                    f"of: {', '.join(interval.split())}"
                )
            continue
        nullable = kind.endswith("?")
        kind = kind.rstrip("?")
        if value is None and nullable:
            continue
        types = _TYPES[kind]
        valid = isinstance(value, types) and (
            kind == "bool" or not isinstance(value, bool)
        )
        if valid and kind != "bool":
            valid = _in_interval(value, interval)  # NaN is in none
        if not valid:
            expected = "an integer" if kind == "int" else f"a {kind}"
            if interval:
                expected += f" in {interval}"
            if nullable:
                expected += " or null"
            raise HparamsError(
                f"{source}: {key}: {value!r} is not valid; expected {expected}"
            )


def _plain_yaml(text, source):
    """Parse override text (plain YAML, no tags) into a dict."""
    if not text:
        return {}
    if isinstance(text, dict):
        return dict(text)
    try:
        data = ruamel.yaml.YAML(typ="safe", pure=True).load(text)
    except ruamel.yaml.YAMLError as err:
        raise HparamsError(f"{source}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HparamsError(f"{source}: expected `key: value` lines")
    return data


def resolve_hparams(path, overrides=None):
    """The base file and merged overrides that a (variant) file stands for.

    Arguments
    ---------
    path : str
        A full hyperpyyaml file, or a variant with a ``base:`` key.
    overrides : str or dict, optional
        Command-line overrides (YAML text as SpeechBrain's
        ``parse_arguments`` returns them, or a dict).

    Returns
    -------
    tuple
        ``(base_path, overrides_dict)``.

    Example
    -------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "base.yaml"), "w").write("a: 1\\nb: 2\\n")
    >>> v = os.path.join(d, "v.yaml")
    >>> _ = open(v, "w").write("base: base.yaml\\nb: 3\\n")
    >>> base, over = resolve_hparams(v, "a: 5")
    >>> os.path.basename(base), over
    ('base.yaml', {'b': 3, 'a': 5})
    """
    if not os.path.isfile(path):
        raise HparamsError(f"hyperparameter file not found: {path}")
    merged = _plain_yaml(overrides, "command-line overrides")
    with open(path) as f:
        text = f.read()
    chain = [path]
    while True:
        try:
            # A full hyperpyyaml file has tags, which plain YAML rejects.
            head = _plain_yaml(text, path)
        except HparamsError:
            head = None
        if not head or "base" not in head:
            return path, merged
        base = os.path.join(os.path.dirname(path), head.pop("base"))
        if not os.path.isfile(base):
            raise HparamsError(f"{path}: its base file {base} does not exist")
        if base in chain:
            raise HparamsError(f"{path}: base files form a cycle: {chain}")
        chain.append(base)
        merged = {**head, **merged}
        path = base
        with open(path) as f:
            text = f.read()


_INCLUDE = re.compile(r"^include: *(\S.*?) *$", flags=re.M)


def included_files(value):
    """The files an ``include:`` value names: one, or a yaml list.

    Example
    -------
    >>> included_files("encoder.yaml")
    ['encoder.yaml']
    >>> included_files("[folds.yaml, encoder.yaml]")
    ['folds.yaml', 'encoder.yaml']
    """
    names = ruamel.yaml.YAML(typ="safe").load(value)
    return [names] if isinstance(names, str) else [str(n) for n in names]


def compose_hparams(path, chain=()):
    """The text of a hyperpyyaml file, each ``include: FILE`` line replaced
    by the (composed) text of FILE, a path relative to the file.

    Arguments
    ---------
    path : str
        A full hyperpyyaml file.
    chain : tuple of str
        The including files (for the cycle check).

    Returns
    -------
    str

    Example
    -------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "part.yaml"), "w").write("n: 2\\n")
    >>> full = os.path.join(d, "full.yaml")
    >>> _ = open(full, "w").write("a: 1\\ninclude: part.yaml\\nb: !ref <n>\\n")
    >>> print(compose_hparams(full), end="")
    a: 1
    n: 2
    b: !ref <n>
    """
    if path in chain:
        raise HparamsError(f"{path}: included files form a cycle: {chain}")
    with open(path, encoding="utf-8") as f:
        text = f.read()

    def include(match):
        texts = []
        for name in included_files(match.group(1)):
            part = os.path.join(os.path.dirname(path), name)
            if not os.path.isfile(part):
                raise HparamsError(
                    f"{path}: its included file {part} does not exist"
                )
            texts.append(compose_hparams(part, (*chain, path)).rstrip("\n"))
        return "\n".join(texts)

    return _INCLUDE.sub(include, text)


def save_hparams(path, overrides_yaml, folder):
    """Write ``folder/hyperparams.yaml``: the file with its includes and
    the overrides applied, every reference resolved (as SpeechBrain's
    ``create_experiment_directory`` writes it for a file without includes).

    Arguments
    ---------
    path : str
        A full hyperpyyaml file.
    overrides_yaml : str
        The overrides, as :func:`load_hparams` returns them.
    folder : str
        The experiment folder.

    Example
    -------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "part.yaml"), "w").write("n: 2\\n")
    >>> full = os.path.join(d, "full.yaml")
    >>> _ = open(full, "w").write("include: part.yaml\\nb: !ref <n>\\n")
    >>> save_hparams(full, "n: 3", d)
    >>> print(open(os.path.join(d, "hyperparams.yaml")).read()[-10:], end="")
    n: 3
    b: 3
    """
    resolved = resolve_references(compose_hparams(path), overrides_yaml)
    with atomic_open(os.path.join(folder, "hyperparams.yaml")) as f:
        f.write(f"# Generated {datetime.date.today()} from:\n")
        f.write(f"# {os.path.abspath(path)}\n# yamllint disable\n")
        f.write(resolved.getvalue())


def _overrides_yaml(merged):
    """The overrides as hyperpyyaml reads them (empty text for none)."""
    stream = io.StringIO()
    ruamel.yaml.YAML().dump(merged, stream)
    return stream.getvalue() if merged else ""


def plain_hparams(path, overrides=None):
    """The values a file stands for, without building any of its objects.

    Loading a file builds its objects, and some write as they are built
    (a checkpointer creates its folder); a recipe reads its output folder
    here first, to check and lock it before anything is written there.

    Arguments
    ---------
    path : str
        A full hyperpyyaml file, or a variant with a ``base:`` key.
    overrides : str or dict, optional
        Command-line overrides.

    Returns
    -------
    dict
        Every key, references resolved; an object's entry is its
        arguments (a tagged mapping or list), not the object.

    Example
    -------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "base.yaml"), "w").write(
    ...     "out: !ref runs/<seed>\\nseed: 1\\n"
    ...     "ckpt: !new:speechbrain.utils.checkpoints.Checkpointer\\n"
    ...     "    checkpoints_dir: !ref <out>/save\\n")
    >>> values = plain_hparams(os.path.join(d, "base.yaml"), {"seed": 7})
    >>> values["out"], values["ckpt"]["checkpoints_dir"]
    ('runs/7', 'runs/7/save')
    """
    base, merged = resolve_hparams(path, overrides)
    check_hparams(merged, f"{path} with overrides")
    text = compose_hparams(base)
    try:
        resolved = resolve_references(text, _overrides_yaml(merged))
        values = ruamel.yaml.YAML().load(resolved)
    except Exception as err:
        raise HparamsError(f"{base} with overrides from {path}: {err}") from err
    if not isinstance(values, dict):
        raise HparamsError(f"{base}: expected `key: value` lines")
    return values


def load_hparams(path, overrides=None):
    """Load a hyperpyyaml file, following ``base:`` and applying overrides.

    Arguments
    ---------
    path : str
        A full hyperpyyaml file, or a variant with a ``base:`` key.
    overrides : str or dict, optional
        Command-line overrides.

    Returns
    -------
    tuple
        ``(hparams, base_path, overrides_yaml)``: the loaded objects, and the
        base file and overrides text to record in the experiment folder.

    Example
    -------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "base.yaml"), "w").write(
    ...     "a: 1\\nb: !ref <a>\\n")
    >>> v = os.path.join(d, "v.yaml")
    >>> _ = open(v, "w").write("base: base.yaml\\na: 4\\n")
    >>> load_hparams(v)[0]["b"]
    4
    """
    base, merged = resolve_hparams(path, overrides)
    check_hparams(merged, f"{path} with overrides")
    overrides_yaml = _overrides_yaml(merged)
    text = compose_hparams(base)
    try:
        hparams = load_hyperpyyaml(text, overrides_yaml)
    except OSError as err:
        if err.filename is not None:
            # A folder that an object creates (a checkpointer's save
            # folder) is at fault, not the file: the error names it.
            raise
        raise HparamsError(f"{base} with overrides from {path}: {err}") from err
    except Exception as err:
        raise HparamsError(f"{base} with overrides from {path}: {err}") from err
    check_hparams(hparams, base)
    return hparams, base, overrides_yaml
