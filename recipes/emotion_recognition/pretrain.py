#!/usr/bin/env python3
"""Recipe: cluster-guided contrastive pretraining of the emotion encoder.

The pretraining of "Revealing Emotional Clusters in Speaker Embeddings: A
Contrastive Learning Strategy for Speech Emotion Recognition" (Ulgen, Du,
Busso and Sisman, ICASSP 2024). Each speaker's utterances are clustered in
a speaker embedding space (``emotion_invariant.clustering``); the clusters
stand in for emotion labels, so unlabelled speech can be used. An anchor's
positive is another utterance of its speaker and cluster
(``emotion_invariant.data.cluster_sampler``), its negatives are its
speaker's utterances of other clusters in the batch (and, if asked, every
other speaker's), and the loss is the supervised contrastive loss over the
two views (anchor, positive) with the cluster as the label. The switches
are in yaml:

- ``positives: random_same_speaker``: the ablation baseline, any other
  utterance of the speaker is the positive and the speaker is the label;
- ``multitask: speaker`` adds speaker classification on the embedding,
  ``multitask: adversary`` the same classifier behind gradient reversal.

The encoder is the emotion recognition recipe's, so the pretrained
``encoder.ckpt`` (or the checkpoint folder) initialises its fine-tuning,
where :func:`label_budget` keeps a fraction of the emotion labels.

To run::

    python recipes/emotion_recognition/pretrain.py \\
        hparams/emotion_recognition/pretrain_cluster_contrastive.yaml \\
        --data_folder results/demo/corpus --output_folder results/pretrain/c \\
        --speaker_model results/sv/baseline/save

``--fold K`` pretrains on the training speakers of fold K (as the emotion
recognition recipe splits them) and writes ``fold_K/encoder.ckpt``;
``--fold 1,2`` or ``all`` does so for each. ``--debug`` runs two batches of
two epochs; every yaml key can be overridden on the command line.
"""

import sys
import time
from collections import Counter

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.distributed import infer_device, run_on_main

from emotion_invariant.augment.views import make_views, to_views
from emotion_invariant.clustering.analysis import pretraining_clusters
from emotion_invariant.data.cluster_sampler import check_settings
from emotion_invariant.data.pretraining import pair_dataset, pretraining_rows
from emotion_invariant.distributed import DistributedBrain, ddp_destroy_group
from emotion_invariant.experiment import USER_ERRORS, requested_folds, start_run
from emotion_invariant.losses.supcon import speaker_supcon
from emotion_invariant.models.embedder import ECAPA_SIZES, embed
from emotion_invariant.models.finetune import resize_output
from emotion_invariant.models.pretrained import save_encoder


def check_pretraining(hparams):
    """The pretraining's switches, the speaker model's size keys included."""
    check_settings(hparams, model_sizes=ECAPA_SIZES)


class ClusterContrastiveBrain(DistributedBrain):
    """ECAPA-TDNN trained with SupCon on (anchor, positive) pairs."""

    def embed(self, wavs, lens):
        """Embeddings ``[B, D]`` of padded waveforms."""
        return embed(self.modules, wavs, lens).squeeze(1)

    def compute_forward(self, batch, stage):
        """Embeddings of anchors then positives; speaker logits if asked."""
        batch = batch.to(self.device)
        wavs, lens, _, _ = make_views(
            *batch.sig, (), None, n_views=1, extra_views=[batch.pos_sig]
        )
        embeddings = self.embed(wavs, lens)
        spk_logits = None
        multitask = self.hparams.multitask
        if multitask != "none":
            if multitask == "adversary":
                self.lambda_ = self.hparams.grl_schedule(self.progress())
                self.hparams.speaker_head.set_lambda(self.lambda_)
            spk_logits = self.modules.speaker_head(
                embeddings, reverse=multitask == "adversary"
            )
        return embeddings, spk_logits

    def compute_objectives(self, predictions, batch, stage):
        """SupCon over the two views, plus the weighted speaker loss."""
        embeddings, spk_logits = predictions
        labels = batch.label_encoded.data.squeeze(1)
        spk = batch.spk_encoded.data.squeeze(1)
        groups = None if self.hparams.contrast_all else spk
        loss = speaker_supcon(
            self.hparams.supcon, to_views(embeddings, 2), labels, groups
        )
        self.stats["supcon"] += loss.item()
        if spk_logits is not None:
            targets = torch.cat([spk, spk])
            spk_loss = F.cross_entropy(spk_logits, targets)
            loss = loss + self.hparams.multitask_weight * spk_loss
            self.stats["spk_ce"] += spk_loss.item()
            correct = (spk_logits.argmax(-1) == targets).float().mean()
            self.stats["spk_acc"] += correct.item()
        self.stats["batches"] += 1
        return loss

    def on_stage_start(self, stage, epoch=None):
        """Reset the statistics; draw this epoch's batches."""
        self.epoch = epoch or 1
        self.stats = Counter()
        self.stage_start = time.perf_counter()
        if stage == sb.Stage.TRAIN:
            self.hparams.batch_sampler.set_epoch(self.epoch)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, anneal the learning rate, keep the latest checkpoint."""
        batches = max(1, self.stats.pop("batches", 0))
        stats = {"loss": stage_loss}
        stats.update({k: v / batches for k, v in self.stats.items()})
        if self.hparams.multitask == "adversary":
            stats["lambda"] = round(getattr(self, "lambda_", 0.0), 4)
        stats["seconds"] = round(time.perf_counter() - self.stage_start)
        old_lr, new_lr = self.hparams.lr_annealing(epoch)
        sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, "lr": old_lr}, train_stats=stats
        )
        self.checkpointer.save_and_keep_only(meta={"loss": stage_loss})


def build(argv, fold=None):
    """Parse arguments, prepare data and clusters, build the Brain.

    Arguments
    ---------
    argv : list of str
        ``hparams_file [--overrides]`` as on the command line.
    fold : str, optional
        Pretrain on this fold's training speakers (default: the ``fold``
        key, which must name one fold here).

    Returns
    -------
    tuple
        ``(brain, hparams, dataset)``.
    """
    # pretraining_rows checks the audio it reads
    hparams, run_opts = start_run(argv, fold, check_pretraining, audio=())
    rows = pretraining_rows(hparams)
    device = run_opts.get("device") or infer_device()
    clusters = pretraining_clusters(hparams, rows, device)
    data = pair_dataset(hparams, rows, clusters)
    n_speakers = len(hparams["pretrain_speakers"])
    resize_output(hparams["speaker_head"].head, max(2, n_speakers))
    brain = ClusterContrastiveBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    return brain, hparams, data


def main(argv=None):
    """Pretrain once per requested fold; returns the last encoder's path."""
    argv = list(argv or sys.argv[1:])
    for fold in requested_folds(argv, check_pretraining):
        brain, hparams, data = build(argv, fold)
        loader = {
            "batch_sampler": hparams["batch_sampler"],
            "num_workers": hparams["num_workers"],
        }
        brain.fit(hparams["epoch_counter"], data, train_loader_kwargs=loader)
        run_on_main(
            save_encoder,
            args=[hparams["embedding_model"], hparams["encoder_file"]],
        )
    return hparams["encoder_file"]


if __name__ == "__main__":
    try:
        main()
        ddp_destroy_group()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
