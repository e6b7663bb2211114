"""Speaker adversary for speaker-invariant emotion embeddings.

Implements "Speaker-invariant Affective Representation Learning via
Adversarial Training" (Li et al., ICASSP 2020): a speaker classifier sits
behind a gradient reversal layer (Ganin & Lempitsky, 2015) and an entropy
loss pushes its speaker posterior towards uniform, so the emotion encoder
keeps emotion and sheds speaker identity.

A typical training step, with ``emb`` the emotion embedding::

    adversary.set_lambda(schedule(progress))
    spk_logits = adversary(emb)
    ent_logits = adversary(emb, reverse=False, head_grad=False)
    loss = (
        emo_loss
        + adv_weight * F.cross_entropy(spk_logits, spk_id)
        + entropy_weight * speaker_entropy_loss(ent_logits)
    )

The head learns to classify speakers while the reversal hands the encoder
``-lambda`` times that gradient; the entropy term reaches the encoder only,
un-reversed, and pushes the head's posterior towards uniform.

Under DDP each module is wrapped on its own: an adversary head that is not
used at every step (a zero weight, a warm-up that skips it, or only the
``head_grad=False`` path) leaves parameters without gradients, so DDP needs
``find_unused_parameters=True`` (SpeechBrain's ``--find_unused_parameters``).
"""

import math

import torch
from torch.func import functional_call


class GradientReversalFunction(torch.autograd.Function):
    """Identity in the forward pass, ``-lambda * grad`` in the backward pass.

    Example
    -------
    >>> x = torch.ones(3, requires_grad=True)
    >>> GradientReversalFunction.apply(x, 0.5).sum().backward()
    >>> x.grad
    tensor([-0.5000, -0.5000, -0.5000])
    """

    @staticmethod
    def forward(ctx, x, lambda_):
        """Return ``x`` unchanged and remember ``lambda_``."""
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        """Flip and scale the incoming gradient; ``lambda_`` has none."""
        return -ctx.lambda_ * grad_output, None


def _check_lambda(value):
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"gradient reversal lambda must be a finite number >= 0, "
            f"got {value}"
        )
    return value


class GradientReversal(torch.nn.Module):
    """Gradient reversal layer with a lambda that can change every step.

    Arguments
    ---------
    lambda_ : float
        Scale of the reversed gradient (>= 0). Read at each forward pass, so
        setting the attribute or calling :meth:`set_lambda` between steps
        takes effect at the next step.

    Example
    -------
    >>> grl = GradientReversal(lambda_=2.0)
    >>> x = torch.ones(2, requires_grad=True)
    >>> grl(x).sum().backward()
    >>> x.grad
    tensor([-2., -2.])
    >>> grl.set_lambda(0.0)
    >>> grl.lambda_
    0.0
    """

    def __init__(self, lambda_=1.0):
        super().__init__()
        self.lambda_ = _check_lambda(lambda_)

    def set_lambda(self, value):
        """Set the scale used from the next forward pass on.

        Arguments
        ---------
        value : float
            New lambda (>= 0).

        Example
        -------
        >>> grl = GradientReversal()
        >>> grl.set_lambda(0.25)
        >>> grl.lambda_
        0.25
        """
        self.lambda_ = _check_lambda(value)

    def forward(self, x):
        """Identity forward; the backward pass multiplies by ``-lambda_``.

        Arguments
        ---------
        x : torch.Tensor
            Any tensor.

        Returns
        -------
        torch.Tensor
            ``x``, with reversed gradient.

        Example
        -------
        >>> GradientReversal()(torch.zeros(2)).shape
        torch.Size([2])
        """
        return GradientReversalFunction.apply(x, _check_lambda(self.lambda_))

    def extra_repr(self):
        """Show lambda when the module is printed."""
        return f"lambda_={self.lambda_}"


class BatchStandardize(torch.nn.Module):
    """Zero mean, unit variance per feature over all leading dimensions of
    the batch (a ``BatchNorm1d`` without affine or running statistics, for
    inputs ``[..., features]``).

    Arguments
    ---------
    features : int
        Size of the last dimension.
    eps : float
        Added to the variance.
    running_stats : bool
        Track running statistics and standardise with them in eval mode
        (a head's input at evaluation), instead of always with the batch's.

    Example
    -------
    >>> x = 3 + 2 * torch.randn(64, 1, 4)
    >>> y = BatchStandardize(4)(x)
    >>> y.shape, bool(y.mean((0, 1)).abs().max() < 1e-5)
    (torch.Size([64, 1, 4]), True)
    """

    def __init__(self, features, eps=1e-5, running_stats=False):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(
            features, eps=eps, affine=False, track_running_stats=running_stats
        )

    def forward(self, x):
        """Standardise ``x`` ``[..., features]`` over the batch."""
        return self.norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class SpeakerAdversary(torch.nn.Module):
    """Speaker classifier behind a gradient reversal layer.

    Arguments
    ---------
    input_size : int
        Embedding dimension.
    n_speakers : int
        Number of training speakers.
    hidden_size : int
        Width of the hidden layers.
    n_hidden_layers : int
        Hidden ``Linear -> ReLU`` blocks before the output layer (0 gives
        a linear classifier).
    lambda_ : float
        Initial reversal scale; see :class:`GradientReversal`.
    input_norm : bool
        Standardise each embedding dimension over the batch before the
        head (no learned scale, no running statistics), so the head sees
        every direction as a standardised linear probe does, however small
        its variance.

    Example
    -------
    >>> adv = SpeakerAdversary(input_size=8, n_speakers=5, hidden_size=16)
    >>> emb = torch.randn(4, 1, 8)  # as SpeechBrain's ECAPA emits
    >>> adv(emb).shape
    torch.Size([4, 1, 5])
    """

    def __init__(
        self,
        input_size,
        n_speakers,
        hidden_size=256,
        n_hidden_layers=1,
        lambda_=1.0,
        input_norm=False,
    ):
        super().__init__()
        if input_size < 1 or hidden_size < 1 or n_hidden_layers < 0:
            raise ValueError(
                f"SpeakerAdversary needs input_size >= 1, hidden_size >= 1 "
                f"and n_hidden_layers >= 0, got {input_size}, {hidden_size} "
                f"and {n_hidden_layers}"
            )
        if n_speakers < 2:
            raise ValueError(
                f"SpeakerAdversary needs at least 2 speakers, got {n_speakers}"
            )
        self.grl = GradientReversal(lambda_)
        layers = [BatchStandardize(input_size)] if input_norm else []
        size = input_size
        for _ in range(n_hidden_layers):
            layers += [torch.nn.Linear(size, hidden_size), torch.nn.ReLU()]
            size = hidden_size
        layers.append(torch.nn.Linear(size, n_speakers))
        self.head = torch.nn.Sequential(*layers)

    def set_lambda(self, value):
        """Set the reversal scale from the next forward pass on.

        Arguments
        ---------
        value : float
            New lambda (>= 0), e.g. ``LambdaSchedule()(progress)``.

        Example
        -------
        >>> adv = SpeakerAdversary(4, 3, hidden_size=4)
        >>> adv.set_lambda(0.1)
        >>> adv.grl.lambda_
        0.1
        """
        self.grl.set_lambda(value)

    def forward(self, x, reverse=True, head_grad=True):
        """Speaker logits of the embeddings ``x``.

        Arguments
        ---------
        x : torch.Tensor
            Embeddings ``[..., input_size]``.
        reverse : bool
            Pass ``x`` through the gradient reversal (the adversarial speaker
            classification path). ``False`` for the entropy path.
        head_grad : bool
            If ``False`` the head's parameters are used detached, so a loss
            on these logits trains only what produced ``x`` (the entropy
            path must not teach the head to be uncertain).

        Returns
        -------
        torch.Tensor
            Logits ``[..., n_speakers]``; ``torch.log_softmax`` of them are
            the log-posteriors that SpeechBrain's ``nll_loss`` expects.

        Example
        -------
        >>> adv = SpeakerAdversary(4, 3, hidden_size=4)
        >>> logits = adv(torch.randn(2, 4), reverse=False, head_grad=False)
        >>> logits.shape
        torch.Size([2, 3])
        """
        if reverse:
            x = self.grl(x)
        if head_grad:
            return self.head(x)
        params = {k: p.detach() for k, p in self.head.named_parameters()}
        return functional_call(self.head, params, (x,))


def speaker_entropy_loss(logits, reduction="mean"):
    """Distance of the speaker posterior from uniform: ``log K - H(p)``.

    ``p = softmax(logits)`` over the last axis (``K`` speakers) and ``H`` is
    its entropy in nats. The loss is >= 0, equals 0 if and only if ``p`` is
    uniform and approaches ``log K`` for a one-hot posterior. Minimising it
    maximises the entropy, so it is *added* to the training loss.

    Arguments
    ---------
    logits : torch.Tensor
        Speaker logits ``[..., K]`` with ``K >= 2``.
    reduction : str
        ``"mean"`` over every leading position, or ``"none"``.

    Returns
    -------
    torch.Tensor
        A scalar, or ``[...]`` with ``reduction="none"``.

    Example
    -------
    >>> speaker_entropy_loss(torch.zeros(3, 4))
    tensor(0.)
    >>> peaked = torch.tensor([[100.0, 0.0, 0.0, 0.0]])
    >>> torch.allclose(speaker_entropy_loss(peaked), torch.tensor(4.0).log())
    True
    """
    n_classes = logits.shape[-1]
    if n_classes < 2:
        raise ValueError(
            f"speaker_entropy_loss needs logits over >= 2 speakers, got "
            f"shape {tuple(logits.shape)}"
        )
    if reduction not in ("mean", "none"):
        raise ValueError(
            f"reduction must be 'mean' or 'none', got {reduction!r}"
        )
    log_p = torch.log_softmax(logits, dim=-1)
    neg_entropy = (log_p.exp() * log_p).sum(dim=-1)
    loss = math.log(n_classes) + neg_entropy
    if reduction == "mean":
        return loss.mean()
    return loss


class LambdaSchedule:
    """Reversal scale as a function of training progress ``p`` in [0, 1].

    After ``warmup`` (lambda 0) the remaining progress ``q`` in [0, 1]
    drives one of:

    - ``"dann"``: ``max_lambda * (2 / (1 + exp(-gamma * q)) - 1)``, the
      ramp of Ganin & Lempitsky (2015);
    - ``"linear"``: ``max_lambda * q``;
    - ``"constant"``: ``max_lambda``.

    Arguments
    ---------
    kind : str
        ``"dann"``, ``"linear"`` or ``"constant"``.
    gamma : float
        Steepness of the ``"dann"`` ramp (> 0).
    max_lambda : float
        Final scale (>= 0).
    warmup : float
        Fraction of training, in [0, 1), with lambda 0.

    Example
    -------
    >>> schedule = LambdaSchedule("linear", max_lambda=2.0, warmup=0.5)
    >>> schedule(0.25), schedule(0.75), schedule(1.0)
    (0.0, 1.0, 2.0)
    >>> round(LambdaSchedule()(1.0), 4)
    0.9999
    """

    KINDS = ("dann", "linear", "constant")

    def __init__(self, kind="dann", gamma=10.0, max_lambda=1.0, warmup=0.0):
        if kind not in self.KINDS:
            raise ValueError(
                f"LambdaSchedule kind must be one of {self.KINDS}, got {kind!r}"
            )
        if not gamma > 0:
            raise ValueError(f"LambdaSchedule gamma must be > 0, got {gamma}")
        if not max_lambda >= 0:
            raise ValueError(
                f"LambdaSchedule max_lambda must be >= 0, got {max_lambda}"
            )
        if not 0 <= warmup < 1:
            raise ValueError(
                f"LambdaSchedule warmup must be in [0, 1), got {warmup}"
            )
        self.kind = kind
        self.gamma = float(gamma)
        self.max_lambda = float(max_lambda)
        self.warmup = float(warmup)

    def __call__(self, progress):
        """Lambda at ``progress`` (fraction of training done, in [0, 1]).

        Arguments
        ---------
        progress : float

        Returns
        -------
        float

        Example
        -------
        >>> LambdaSchedule("constant", max_lambda=0.3)(0.0)
        0.3
        """
        progress = float(progress)
        if not 0 <= progress <= 1:
            raise ValueError(
                f"LambdaSchedule progress must be in [0, 1], got {progress}"
            )
        if progress < self.warmup:
            return 0.0
        q = (progress - self.warmup) / (1 - self.warmup)
        if self.kind == "constant":
            return self.max_lambda
        if self.kind == "linear":
            return self.max_lambda * q
        return self.max_lambda * (2 / (1 + math.exp(-self.gamma * q)) - 1)

    def __repr__(self):
        return (
            f"LambdaSchedule(kind={self.kind!r}, gamma={self.gamma}, "
            f"max_lambda={self.max_lambda}, warmup={self.warmup})"
        )


class EmbeddingMemory(torch.nn.Module):
    """Ring buffer of detached embeddings and their speaker labels.

    An adversary head trained on the current batch only sees each of a
    hundred-odd training speakers a few dozen times per epoch and stays
    near chance, so it teaches the encoder nothing. Replaying the recent
    embeddings to the head (with no gradient to the encoder) lets it keep up
    with the encoder it chases. The buffers are part of the state dict, so a
    SpeechBrain Checkpointer saves and restores the memory with the model.

    Arguments
    ---------
    capacity : int
        Embeddings kept (>= 0; 0 disables the memory).
    dim : int
        Embedding size.

    Example
    -------
    >>> memory = EmbeddingMemory(capacity=4, dim=2)
    >>> memory.push(torch.ones(3, 2), torch.tensor([0, 1, 2]))
    >>> memory.push(2 * torch.ones(2, 2), torch.tensor([3, 4]))
    >>> len(memory), memory.labels.tolist()  # the oldest was overwritten
    (4, [4, 1, 2, 3])
    >>> rng = torch.Generator().manual_seed(0)
    >>> emb, labels = memory.sample(8, generator=rng)
    >>> emb.shape, bool(((emb == 1) | (emb == 2)).all())
    (torch.Size([8, 2]), True)
    """

    def __init__(self, capacity, dim):
        super().__init__()
        if capacity < 0 or dim < 1:
            raise ValueError(
                f"EmbeddingMemory needs capacity >= 0 and dim >= 1, got "
                f"{capacity} and {dim}"
            )
        self.register_buffer("embeddings", torch.zeros(capacity, dim))
        self.register_buffer(
            "labels", torch.full((capacity,), -1, dtype=torch.long)
        )
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    @property
    def capacity(self):
        """How many embeddings the memory holds at most."""
        return self.labels.numel()

    def __len__(self):
        return int(self.filled)

    @torch.no_grad()
    def push(self, embeddings, labels):
        """Store a batch, overwriting the oldest entries once full.

        Arguments
        ---------
        embeddings : torch.Tensor
            ``[B, dim]`` or ``[B, 1, dim]`` (detached here).
        labels : torch.Tensor
            ``[B]`` speaker indices.
        """
        if self.capacity == 0 or len(labels) == 0:
            return
        embeddings = embeddings.detach().reshape(len(labels), -1)
        if embeddings.shape[1] != self.embeddings.shape[1]:
            raise ValueError(
                f"EmbeddingMemory holds {self.embeddings.shape[1]}-d "
                f"embeddings, got {embeddings.shape[1]}-d ones"
            )
        embeddings, labels = (
            embeddings[-self.capacity :],
            labels[-self.capacity :],
        )
        steps = torch.arange(len(labels), device=self.labels.device)
        slots = (self.position + steps) % self.capacity
        self.embeddings[slots] = embeddings.to(self.embeddings)
        self.labels[slots] = labels.to(self.labels)
        self.position.copy_((self.position + len(labels)) % self.capacity)
        self.filled.copy_(
            torch.clamp(self.filled + len(labels), max=self.capacity)
        )

    def sample(self, n, generator=None):
        """``n`` stored embeddings and labels, drawn with replacement.

        Arguments
        ---------
        n : int
            How many to draw.
        generator : torch.Generator, optional
            Random source (default: torch's global one, seeded by the
            recipe's ``seed``).

        Returns
        -------
        embeddings : torch.Tensor
            ``[n, dim]``, without gradient.
        labels : torch.Tensor
            ``[n]``.
        """
        if len(self) == 0:
            raise ValueError("EmbeddingMemory.sample: the memory is empty")
        index = torch.randint(len(self), (n,), generator=generator)
        index = index.to(self.labels.device)
        return self.embeddings[index], self.labels[index]

    def replay(self, head, embeddings, labels, n):
        """The head's logits and the labels of ``n`` remembered embeddings
        (None while the memory is off or empty); then remember this batch.

        The replayed embeddings carry no gradient: they train the head only.

        Arguments
        ---------
        head : callable
            The adversary head, ``[n, dim] -> [n, n_speakers]`` logits.
        embeddings : torch.Tensor
            This batch's ``[B, dim]`` embeddings.
        labels : torch.Tensor
            Their ``[B]`` speaker indices.
        n : int
            How many to replay (:meth:`sample`).

        Returns
        -------
        tuple or None
            ``(logits, labels)`` of the replayed embeddings.

        Example
        -------
        >>> memory = EmbeddingMemory(capacity=4, dim=2)
        >>> head = torch.nn.Linear(2, 3)
        >>> batch, spk = torch.ones(2, 2), torch.tensor([0, 1])
        >>> memory.replay(head, batch, spk, 5) is None  # empty until now
        True
        >>> logits, labels = memory.replay(head, batch, spk, 5)
        >>> logits.shape, len(memory)
        (torch.Size([5, 3]), 4)
        """
        if self.capacity == 0:
            return None
        replay = None
        if len(self) > 0:
            stored, stored_labels = self.sample(n)
            replay = head(stored), stored_labels
        self.push(embeddings, labels)
        return replay
