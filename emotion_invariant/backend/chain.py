"""Back-ends applied one after the other: a projection, then WCCN, say.

Each member is fitted on the previous one's output (length-normalised, as
every member's input is) and applied without normalisation in between, so
a chain of maps is still one affine map of the unit embeddings and can be
built into a model folder. On RAVDESS, within-speaker (or emotion) NAP
followed by WCCN beats either alone (docs/results/backend_ravdess.md).
"""

from emotion_invariant.backend.base import REGISTRY as KINDS
from emotion_invariant.backend.base import Backend, BackendError, unit


class Chain(Backend):
    """Members fitted and applied in order; :meth:`fit` takes ``members``,
    a list of ``(kind, settings)``, the first applied first.

    Example
    -------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> emb = torch.randn(60, 6, generator=g)
    >>> speakers = [i % 10 for i in range(60)]
    >>> chain = Chain.fit(emb, speakers, members=[
    ...     ["within_speaker_nap", {"dims": 1}], ["wccn", {"shrinkage": 0.5}]])
    >>> [m.kind for m in chain.members]
    ['within_speaker_nap', 'wccn']
    >>> chain.transform(emb).shape
    torch.Size([60, 6])
    """

    kind = "chain"

    def __init__(self, arrays, settings=None):
        super().__init__(arrays, settings)
        self.members = []
        for k, (kind, member_settings) in enumerate(self.settings["members"]):
            prefix = f"{k}."
            own = {
                name[len(prefix) :]: value
                for name, value in self.arrays.items()
                if name.startswith(prefix)
            }
            self.members.append(KINDS[kind](own, member_settings))

    @classmethod
    def fit(cls, embeddings, speakers, nuisances=None, members=()):
        """Fit each member on the previous one's output."""
        if not members:
            raise BackendError("chain: no members given")
        x = unit(embeddings)
        arrays, fitted = {}, []
        for k, (kind, settings) in enumerate(members):
            if kind not in KINDS or kind in ("chain", "plda"):
                raise BackendError(
                    f"chain: member {kind!r} is not a map of the embeddings "
                    "(one of: emotion_nap, within_speaker_nap, wccn, lda, "
                    "consistency)"
                )
            member = KINDS[kind].fit(x, speakers, nuisances, **settings)
            x = member.project(unit(x))
            arrays.update({f"{k}.{n}": v for n, v in member.arrays.items()})
            fitted.append([kind, member.settings])
        return cls(
            arrays, {"members": fitted, "dim": int(unit(embeddings).shape[1])}
        )

    def project(self, x):
        """Each member's map in turn (no normalisation in between)."""
        for member in self.members:
            x = member.project(x)
        return x
