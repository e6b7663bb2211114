"""The type and range of every method and training key, checked when a
recipe loads its hyperparameters and on the command-line overrides."""


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
    "backend_fit_split": ("choice", "train dev"),
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
    emotion_invariant.hparams.rules.HparamsError: overrides: \
scoring_backend: 'pca' is not valid; expected one of: none, emotion_nap, ...
    >>> check_hparams({"copypaste_prob": "abc"}, "overrides")
    Traceback (most recent call last):
    ...
    emotion_invariant.hparams.rules.HparamsError: overrides: \
copypaste_prob: 'abc' is not valid; expected a number in [0, 1]
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
