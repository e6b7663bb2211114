"""A training objective as a weighted sum of named loss terms.

A recipe switches each term on by its weight in yaml (``<name>_weight``
keys); the epoch's log shows the mean of each term switched on.
"""

from collections import Counter

import torch


class WeightedTerms:
    """The weighted sum of named loss terms, and their means for the log.

    Arguments
    ---------
    weights : dict
        ``{name: weight}``, in the order of the log; a term weighted 0 is
        off (and not logged).

    Example
    -------
    >>> terms = WeightedTerms({"aam": 1.0, "erl": 0.5, "supcon": 0.0})
    >>> loss = terms.add({"aam": torch.tensor(2.0), "erl": torch.tensor(1.0)})
    >>> float(loss)
    2.5
    >>> _ = terms.add({"aam": torch.tensor(4.0), "erl": torch.tensor(3.0)})
    >>> terms.means()
    {'aam': 3.0, 'erl': 2.0}
    """

    def __init__(self, weights):
        self.weights = dict(weights)
        self.sums = Counter()
        self.batches = 0

    def add(self, terms, device=None):
        """The loss of one batch: ``sum(weight * term)``.

        Arguments
        ---------
        terms : dict
            ``{name: scalar tensor}``, summed in this order; each value is
            also added to the term's running sum.
        device : torch.device, optional
            Where the loss lives when ``terms`` is empty.

        Returns
        -------
        torch.Tensor
            The scalar loss.
        """
        loss = torch.zeros((), device=device)
        for name, value in terms.items():
            loss = loss + self.weights[name] * value
            self.sums[name] += value.item()
        self.batches += 1
        return loss

    def means(self):
        """Each switched-on term's mean over the batches added so far."""
        batches = max(1, self.batches)
        return {
            name: self.sums[name] / batches
            for name, weight in self.weights.items()
            if weight > 0
        }
