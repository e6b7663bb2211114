"""Hyperpyyaml files that extend one base file by overrides.

A recipe's variants (baseline, emotion-invariant, each ablation row) are sets
of overrides on one base yaml, never copies of it. A variant file names its
base with a ``base:`` key and lists plain ``key: value`` overrides::

    base: ecapa_base.yaml
    copypaste_prob: 1.0
    erl_weight: 1.0

Command-line overrides apply on top of the variant's.
"""

import io
import os

import ruamel.yaml
from hyperpyyaml import load_hyperpyyaml


class HparamsError(ValueError):
    """A hyperparameter file or override that cannot be used."""


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
    stream = io.StringIO()
    ruamel.yaml.YAML().dump(merged, stream)
    overrides_yaml = stream.getvalue() if merged else ""
    with open(base) as f:
        try:
            hparams = load_hyperpyyaml(f, overrides_yaml)
        except Exception as err:
            raise HparamsError(
                f"{base} with overrides from {path}: {err}"
            ) from err
    return hparams, base, overrides_yaml
