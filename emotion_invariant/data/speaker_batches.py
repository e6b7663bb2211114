"""Batches of a few speakers with several utterances each (P x K batches).

A supervised contrastive loss needs positives and negatives in the batch. A
plain shuffle of a corpus with many speakers rarely puts two utterances of
a speaker together, so the positives would be only an utterance's own
augmented views. This sampler builds every batch from ``speakers_per_batch``
speakers with ``utterances_per_speaker`` utterances each, the batches used
by metric-learning recipes for speaker embeddings, and covers each
utterance once per epoch.
"""

import math
import random


class SpeakerBatchSampler:
    """Batches of ``speakers_per_batch`` speakers, several utterances each.

    Each epoch, every speaker's utterances are ordered by taking its groups
    in turn (each group and the order of groups shuffled), so consecutive
    utterances of a speaker come from different groups, and cut into chunks
    of ``utterances_per_speaker``; rounds of one chunk per speaker (speakers
    shuffled) are concatenated and cut into batches of
    ``speakers_per_batch`` chunks. Every utterance appears once per epoch;
    a speaker's last chunk and the last batch may be smaller. The draws
    depend on ``seed`` and the epoch only, so a resumed run gets the
    batches of an unbroken one.

    Use it as a ``batch_sampler`` of a DataLoader, and call
    :meth:`set_epoch` at the start of each epoch.

    Arguments
    ---------
    speakers : sequence of str
        Speaker of each dataset index.
    utterances_per_speaker : int
        Utterances of one speaker in a chunk (>= 1).
    speakers_per_batch : int
        Chunks in a batch (>= 1).
    groups : sequence, optional
        A group of each dataset index (for instance a cluster of the
        speaker's utterances) that a speaker's utterances alternate
        between; default: one group per speaker.
    seed : int
        Seed of the shuffles.

    Example
    -------
    >>> sampler = SpeakerBatchSampler(
    ...     ["a"] * 4 + ["b"] * 2, utterances_per_speaker=2,
    ...     speakers_per_batch=2, groups=["a0", "a0", "a1", "a1", "b0", "b0"])
    >>> batches = list(sampler)
    >>> len(batches) == len(sampler) == 2
    True
    >>> sorted(i for batch in batches for i in batch)
    [0, 1, 2, 3, 4, 5]
    >>> groups = ["a0", "a0", "a1", "a1"]  # speaker a's utterances alternate
    >>> [sorted({groups[i] for i in b if i < 4}) for b in batches]
    [['a0', 'a1'], ['a0', 'a1']]
    """

    def __init__(
        self,
        speakers,
        utterances_per_speaker,
        speakers_per_batch,
        groups=None,
        seed=0,
    ):
        if groups is None:
            groups = speakers
        if len(speakers) != len(groups):
            raise ValueError(
                f"{len(speakers)} speakers for {len(groups)} groups; need "
                "one of each per utterance"
            )
        if utterances_per_speaker < 1 or speakers_per_batch < 1:
            raise ValueError(
                "utterances_per_speaker and speakers_per_batch must be >= 1, "
                f"got {utterances_per_speaker} and {speakers_per_batch}"
            )
        self.utterances_per_speaker = int(utterances_per_speaker)
        self.speakers_per_batch = int(speakers_per_batch)
        self.seed = seed
        self.epoch = 0
        self.groups = {}
        for index, (spk, label) in enumerate(zip(speakers, groups)):
            self.groups.setdefault(spk, {}).setdefault(label, []).append(index)

    def set_epoch(self, epoch):
        """Draw the batches of ``epoch`` at the next iteration.

        Arguments
        ---------
        epoch : int

        Example
        -------
        >>> sampler = SpeakerBatchSampler(["a"] * 4, 2, 1)
        >>> sampler.set_epoch(3)
        >>> sampler.epoch
        3
        """
        self.epoch = int(epoch)

    def _chunks(self, rng):
        chunks = {}
        for spk in sorted(self.groups):
            groups = [list(rows) for rows in self.groups[spk].values()]
            for rows in groups:
                rng.shuffle(rows)
            rng.shuffle(groups)
            depth = max(len(rows) for rows in groups)
            order = [
                rows[i]
                for i in range(depth)
                for rows in groups
                if i < len(rows)
            ]
            size = self.utterances_per_speaker
            chunks[spk] = [
                order[k : k + size] for k in range(0, len(order), size)
            ]
        return chunks

    def __iter__(self):
        rng = random.Random(f"{self.seed}:{self.epoch}")
        chunks = self._chunks(rng)
        order = []
        while chunks:
            active = sorted(chunks)
            rng.shuffle(active)
            for spk in active:
                order.append(chunks[spk].pop(0))
                if not chunks[spk]:
                    del chunks[spk]
        step = self.speakers_per_batch
        for k in range(0, len(order), step):
            yield [i for chunk in order[k : k + step] for i in chunk]

    def __len__(self):
        n_chunks = sum(
            math.ceil(
                sum(map(len, groups.values())) / self.utterances_per_speaker
            )
            for groups in self.groups.values()
        )
        return math.ceil(n_chunks / self.speakers_per_batch)


def speaker_batches(hparams, speakers):
    """The P x K batch sampler when ``speakers_per_batch`` is set, else None.

    It replaces the loader's shuffle: ``train_dataloader_options`` keeps
    its other settings and gets the sampler as ``batch_sampler``.

    Arguments
    ---------
    hparams : dict
        ``speakers_per_batch``, ``utterances_per_speaker``, ``seed`` and
        ``train_dataloader_options`` (updated).
    speakers : list of str
        The speaker of each training item, in dataset order.

    Example
    -------
    >>> hparams = {"speakers_per_batch": 2, "utterances_per_speaker": 2,
    ...            "seed": 0, "train_dataloader_options": {"batch_size": 8,
    ...                                                    "num_workers": 1}}
    >>> sampler = speaker_batches(hparams, ["a", "a", "b", "b"])
    >>> hparams["train_dataloader_options"]["num_workers"], len(sampler)
    (1, 1)
    """
    if hparams["speakers_per_batch"] is None:
        return None
    sampler = SpeakerBatchSampler(
        speakers,
        hparams["utterances_per_speaker"],
        hparams["speakers_per_batch"],
        seed=hparams["seed"],
    )
    options = {
        key: value
        for key, value in hparams["train_dataloader_options"].items()
        if key not in ("batch_size", "shuffle", "drop_last", "sampler")
    }
    hparams["train_dataloader_options"] = {**options, "batch_sampler": sampler}
    return sampler
