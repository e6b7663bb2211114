"""Fine-tuning a pretrained speaker encoder without losing what it knew.

A fresh AAM head on a few new speakers sends large, random gradients into a
pretrained ECAPA-TDNN in its first steps, and batch-norm running statistics
drift to the small new corpus at any learning rate. The remedies here are
the field's usual ones: frozen batch-norm statistics and lower blocks, a
head initialised from the speakers' mean pretrained embeddings (weight
imprinting, Qi et al., CVPR 2018) and warmed up with the encoder frozen,
and L2-SP (Li et al., ICML 2018), which keeps the weights near their
pretrained values.
"""

import torch


def encoder_stages(embedding_model):
    """The stages of an ECAPA-TDNN, from the input up, the head excluded.

    The TDNN block, the three SE-Res2Net blocks, multi-layer feature
    aggregation, then attentive statistics pooling with its batch norm;
    the final linear layer (``fc``) is the head.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> model = ECAPA_TDNN(8, channels=[8, 8, 8, 8, 24], lin_neurons=4,
    ...                    attention_channels=4, se_channels=4, res2net_scale=2)
    >>> len(encoder_stages(model))
    6
    """
    m = embedding_model
    pooling = torch.nn.ModuleList([m.asp, m.asp_bn])
    return [*m.blocks, m.mfa, pooling]


def freeze_lower_blocks(embedding_model, n_blocks):
    """Stop training the lowest ``n_blocks`` stages of an ECAPA-TDNN.

    Arguments
    ---------
    embedding_model : speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
        The encoder.
    n_blocks : int
        How many stages of :func:`encoder_stages` to freeze, from the input
        up: 0 none, 4 the four blocks, 6 everything but the last linear
        layer.

    Returns
    -------
    list of torch.nn.Module
        The frozen stages (to keep in eval mode while training).

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> model = ECAPA_TDNN(8, channels=[8, 8, 8, 8, 24], lin_neurons=4,
    ...                    attention_channels=4, se_channels=4, res2net_scale=2)
    >>> frozen = freeze_lower_blocks(model, 2)
    >>> [any(p.requires_grad for p in b.parameters()) for b in model.blocks]
    [False, False, True, True]
    """
    stages = encoder_stages(embedding_model)
    if not 0 <= n_blocks <= len(stages):
        raise ValueError(
            f"freeze_blocks: {n_blocks} is out of range; 0 to {len(stages)} "
            "stages of the encoder can be frozen (4 blocks, feature "
            "aggregation, pooling)"
        )
    frozen = stages[:n_blocks]
    for stage in frozen:
        stage.requires_grad_(False)
    return frozen


def batchnorm_eval(module):
    """Put every batch-norm layer of ``module`` in eval mode.

    The layers then normalise with their pretrained running statistics and
    stop updating them; their affine weights still train.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2),
    ...                           torch.nn.BatchNorm1d(2)).train()
    >>> batchnorm_eval(net)
    >>> net[0].training, net[1].training
    (True, False)
    """
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.eval()


def hold_pretrained(encoder, frozen_blocks, freeze_bn, trainable, warm):
    """Set a fine-tuned encoder's training modes for one step.

    While the head warms up alone (``warm``), the encoder gets no gradient
    and stays in eval mode; afterwards its ``trainable`` parameters train
    again, while the frozen blocks and (with ``freeze_bn``) every batch norm
    keep their pretrained statistics.

    Arguments
    ---------
    encoder : torch.nn.Module
        The encoder, in train mode (as ``Brain`` sets it each epoch).
    frozen_blocks : list of torch.nn.Module
        The stages :func:`freeze_lower_blocks` froze.
    freeze_bn : bool
        Whether every batch norm keeps its running statistics.
    trainable : list of torch.nn.Parameter
        The encoder parameters that train after the warm-up.
    warm : bool
        Whether the head is warming up alone.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2),
    ...                           torch.nn.BatchNorm1d(2)).train()
    >>> params = list(net.parameters())
    >>> hold_pretrained(net, [], False, params, warm=True)
    >>> net.training, any(p.requires_grad for p in params)
    (False, False)
    >>> hold_pretrained(net.train(), [], True, params, warm=False)
    >>> net[0].training, net[1].training, all(p.requires_grad for p in params)
    (True, False, True)
    """
    for param in trainable:
        param.requires_grad_(not warm)
    if warm:
        encoder.eval()
    elif freeze_bn:
        batchnorm_eval(encoder)
    for block in frozen_blocks:
        block.eval()


class L2SP(torch.nn.Module):
    """L2-SP: squared distance of the trainable weights to a starting point.

    ``sum ||w - w0||^2`` over the parameters that require a gradient, with
    ``w0`` copied when the object is made (the pretrained weights).

    Arguments
    ---------
    model : torch.nn.Module
        The model whose current weights are the starting point.

    Example
    -------
    >>> net = torch.nn.Linear(2, 1)
    >>> reg = L2SP(net)
    >>> float(reg(net))
    0.0
    >>> with torch.no_grad():
    ...     net.bias += 2.0
    >>> round(float(reg(net)), 4)
    4.0
    """

    def __init__(self, model):
        super().__init__()
        # Buffers, so that ``.to(device)`` moves the starting point too.
        for i, param in enumerate(model.parameters()):
            self.register_buffer(f"start_{i}", param.detach().clone())

    def forward(self, model):
        """The penalty for ``model``'s current weights (a scalar tensor)."""
        params = list(model.parameters())
        starts = list(self.buffers())
        if len(params) != len(starts):
            raise ValueError("L2SP: the model's parameters changed in number")
        total = params[0].new_zeros(())
        for param, start in zip(params, starts):
            if param.requires_grad:
                total = total + (param - start).pow(2).sum()
        return total


def imprint_head(weight, embeddings, labels):
    """Set each class row to the normalised mean embedding of its class.

    With an AAM-softmax head so initialised, the pretrained encoder already
    scores its own training speakers well, so the first gradients are small
    and point somewhere useful. Classes with no embedding keep their row.

    Arguments
    ---------
    weight : torch.Tensor
        ``[classes, dim]`` head weight, changed in place.
    embeddings : torch.Tensor
        ``[N, dim]`` embeddings.
    labels : torch.Tensor
        ``[N]`` class indices.

    Returns
    -------
    torch.Tensor
        ``[classes]`` bool: which rows were set.

    Example
    -------
    >>> w = torch.zeros(3, 2)
    >>> emb = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    >>> imprint_head(w, emb, torch.tensor([0, 2, 2])).tolist()
    [True, False, True]
    >>> w.tolist()
    [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """
    emb = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    sums = torch.zeros(weight.shape, dtype=emb.dtype)
    sums.index_add_(0, labels.long().cpu(), emb.cpu())
    seen = torch.bincount(labels.long().cpu(), minlength=weight.shape[0]) > 0
    rows = torch.nn.functional.normalize(sums[seen], dim=-1)
    with torch.no_grad():
        weight[seen] = rows.to(weight.device, weight.dtype)
    return seen


def resize_classifier(classifier, n_classes):
    """Give an AAM head one row per class (fresh Xavier weights).

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    >>> head = Classifier(input_size=4, out_neurons=2)
    >>> resize_classifier(head, 5)
    >>> head.weight.shape
    torch.Size([5, 4])
    """
    weight = torch.empty(n_classes, classifier.weight.shape[1])
    torch.nn.init.xavier_uniform_(weight)
    classifier.weight = torch.nn.Parameter(weight)


def resize_output(sequential, n_outputs):
    """Give the last linear layer of a classifier ``n_outputs`` (fresh).

    Example
    -------
    >>> head = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
    >>> resize_output(head, 3)
    >>> head(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    """
    last = sequential[-1]
    sequential[-1] = torch.nn.Linear(last.in_features, n_outputs)


def head_lr_groups(parameters, head, factor):
    """Optimizer parameter groups: a head learning ``factor`` times faster.

    The head's group carries ``lr_factor``; :func:`scale_learning_rates`
    applies it whenever the learning rate changes, so that a head chasing
    the encoder (a speaker adversary) keeps up with it.

    Arguments
    ---------
    parameters : iterable of torch.nn.Parameter
        Every trained parameter, the head's included.
    head : iterable of torch.nn.Parameter
        The head's parameters.
    factor : float
        Learning-rate factor of the head (> 0).

    Example
    -------
    >>> model = torch.nn.Sequential(
    ...     torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    >>> groups = head_lr_groups(model.parameters(), model[1].parameters(), 5)
    >>> optimizer = torch.optim.SGD(groups, lr=0.1)
    >>> scale_learning_rates(optimizer)
    >>> [group["lr"] for group in optimizer.param_groups]
    [0.1, 0.5]
    """
    if factor <= 0:
        raise ValueError(f"adv_lr_factor must be > 0, got {factor}")
    head = list(head)
    ids = {id(p) for p in head}
    rest = [p for p in parameters if id(p) not in ids]
    return [{"params": rest}, {"params": head, "lr_factor": factor}]


def scale_learning_rates(optimizer):
    """Apply each parameter group's ``lr_factor`` to the first group's lr."""
    lr = optimizer.param_groups[0]["lr"]
    for group in optimizer.param_groups[1:]:
        group["lr"] = lr * group.get("lr_factor", 1.0)
