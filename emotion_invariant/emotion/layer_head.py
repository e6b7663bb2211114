"""A light emotion head over every layer of a frozen encoder.

SUPERB's downstream recipe (Yang et al., Interspeech 2021): a learnt
softmax weighting of the upstream model's layers, then a small classifier.
The layers of an ECAPA-TDNN differ in width (:mod:`layer_features`), so
each is first standardised with the training set's statistics (fixed
buffers: the same scale at training and inference) and projected by its
own linear map to a common width; the weighted sum of the projections is
the representation (:meth:`LayerHead.pool`) that the classifier, the
speaker adversary and the speaker probe see.
"""

import torch

#: The classifier on the weighted features.
HEAD_TYPES = ("linear", "mlp")


class LayerPooling(torch.nn.Module):
    """Standardise each layer, project it, and take the weighted sum.

    Arguments
    ---------
    layer_dims : dict
        Every layer of the input features, name -> width, in the order in
        which they are concatenated.
    layers : list of str
        The layers used (a subset of ``layer_dims``); the others' columns
        are ignored.
    dim : int
        Width of the projections and of the weighted features.
    feature_dropout : float
        Dropout on the standardised input features, in training only: with
        a few training speakers and thousands of input columns, the
        regularisation that keeps the projections from learning them.

    Example
    -------
    >>> pool = LayerPooling({"a": 4, "b": 2}, ["b"], dim=3)
    >>> pool(torch.randn(5, 6)).shape, pool.layer_weights()
    (torch.Size([5, 3]), {'b': 1.0})
    """

    def __init__(self, layer_dims, layers, dim=128, feature_dropout=0.0):
        super().__init__()
        if not 0.0 <= feature_dropout < 1.0:
            raise ValueError(
                f"feature_dropout: {feature_dropout!r} is not valid; expected "
                "a probability in [0, 1)"
            )
        self.feature_dropout = torch.nn.Dropout(feature_dropout)
        layer_dims = dict(layer_dims)
        unknown = [name for name in layers if name not in layer_dims]
        if not layers or unknown:
            raise ValueError(
                f"layers: {list(layers)!r} must name one or more of "
                f"{', '.join(layer_dims)}"
            )
        offsets, start = {}, 0
        for name, width in layer_dims.items():
            offsets[name] = (start, start + width)
            start += width
        self.layers = list(layers)
        self.spans = [offsets[name] for name in self.layers]
        self.register_buffer("shift", torch.zeros(start))
        self.register_buffer("scale", torch.ones(start))
        self.projections = torch.nn.ModuleList(
            torch.nn.Linear(layer_dims[name], dim) for name in self.layers
        )
        self.layer_logits = torch.nn.Parameter(torch.zeros(len(self.layers)))

    def set_standardisation(self, features):
        """Standardise each column with its mean and standard deviation in
        ``features`` ``[N, F]`` (the training set's) from now on."""
        x = torch.as_tensor(features, dtype=torch.float64)
        self.shift.copy_(x.mean(0))
        std = x.std(0, unbiased=False)
        self.scale.copy_(std.clamp(min=1e-5 * float(std.mean()) + 1e-12))

    def layer_weights(self):
        """The softmax weight of each used layer, name -> float."""
        weights = torch.softmax(self.layer_logits.detach(), 0)
        return {n: round(float(w), 4) for n, w in zip(self.layers, weights)}

    def forward(self, features, dropout=True):
        """Weighted features ``[..., dim]`` of features ``[..., F]``
        (``dropout=False``: without the feature dropout, as at inference,
        whatever the mode)."""
        x = (features - self.shift) / self.scale
        if dropout:
            x = self.feature_dropout(x)
        weights = torch.softmax(self.layer_logits, 0)
        out = 0
        for weight, (start, stop), projection in zip(
            weights, self.spans, self.projections
        ):
            out = out + weight * projection(x[..., start:stop])
        return out


class LayerClassifier(torch.nn.Module):
    """The emotion classifier on the weighted features.

    Arguments
    ---------
    dim : int
        Width of the weighted features.
    n_classes : int
        Emotions.
    head_type : str
        ``linear`` (dropout, then one linear layer) or ``mlp`` (one hidden
        layer of ``hidden`` units with leaky ReLU and dropout).
    hidden : int
        Hidden units of the ``mlp`` head.
    dropout : float
        Dropout on the weighted features and the hidden layer.

    Example
    -------
    >>> LayerClassifier(4, 3, "linear")(torch.randn(2, 1, 4)).shape
    torch.Size([2, 1, 3])
    """

    def __init__(
        self, dim, n_classes, head_type="mlp", hidden=128, dropout=0.2
    ):
        super().__init__()
        if head_type not in HEAD_TYPES:
            raise ValueError(
                f"head_type: {head_type!r} is not valid; expected one of: "
                f"{', '.join(HEAD_TYPES)}"
            )
        layers = [torch.nn.Dropout(dropout)]
        if head_type == "mlp":
            layers += [
                torch.nn.Linear(dim, hidden),
                torch.nn.LeakyReLU(),
                torch.nn.Dropout(dropout),
            ]
            dim = hidden
        layers.append(torch.nn.Linear(dim, n_classes))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x):
        """Emotion logits ``[..., n_classes]``."""
        return self.net(x)


class LayerHead(torch.nn.Module):
    """Weight the layers (:class:`LayerPooling`), classify emotions
    (:class:`LayerClassifier`).

    It also keeps the training speakers' average normalisation statistics
    (``population_mean``, ``population_scale``: see
    :class:`~emotion_invariant.emotion.speaker_norm.SpeakerStatistics`),
    so that an exported model can normalise a speaker without statistics
    of its own as training did.

    Arguments
    ---------
    layer_dims : dict
        Every layer of the input features, name -> width, in order.
    layers : list of str
        The layers used.
    n_classes : int
        Emotions.
    head_type : str
        ``linear`` or ``mlp`` (:class:`LayerClassifier`).
    dim : int
        Width of the projections and of the weighted features.
    hidden : int
        Hidden units of the ``mlp`` head.
    dropout : float
        Dropout of the classifier.
    feature_dropout : float
        Dropout on the standardised input features (:class:`LayerPooling`).

    Example
    -------
    >>> head = LayerHead({"a": 4, "b": 2}, ["a", "b"], 3, dim=5)
    >>> x = torch.randn(8, 6)
    >>> head.pooling.set_standardisation(x)
    >>> head.pool(x).shape, head(x).shape
    (torch.Size([8, 5]), torch.Size([8, 3]))
    >>> head.layer_weights()
    {'a': 0.5, 'b': 0.5}
    """

    def __init__(
        self,
        layer_dims,
        layers,
        n_classes,
        head_type="mlp",
        dim=128,
        hidden=128,
        dropout=0.2,
        feature_dropout=0.0,
    ):
        super().__init__()
        self.pooling = LayerPooling(layer_dims, layers, dim, feature_dropout)
        self.classifier = LayerClassifier(
            dim, n_classes, head_type, hidden, dropout
        )
        self.layers = self.pooling.layers
        self.head_type = head_type
        width = len(self.pooling.shift)
        self.register_buffer("population_mean", torch.zeros(width))
        self.register_buffer("population_scale", torch.ones(width))

    def layer_weights(self):
        """The softmax weight of each used layer, name -> float."""
        return self.pooling.layer_weights()

    def pool(self, features, dropout=True):
        """Weighted features ``[..., dim]`` of features ``[..., F]``
        (``dropout=False``: without the feature dropout)."""
        return self.pooling(features, dropout)

    def classify(self, pooled):
        """Emotion logits of weighted features (:meth:`pool`)."""
        return self.classifier(pooled)

    def forward(self, features):
        """Emotion logits ``[..., n_classes]`` of features ``[..., F]``."""
        return self.classify(self.pool(features))
