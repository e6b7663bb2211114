#!/usr/bin/env python3
"""Recipe: speaker-invariant speech emotion recognition.

SpeechBrain's ECAPA-TDNN on fbank with an MLP emotion classifier
(cross-entropy), evaluated on speakers unseen in training. The method of
"Speaker-invariant Affective Representation Learning via Adversarial
Training" (Li et al., ICASSP 2020) is switched on in yaml: ``adv_weight``
(a speaker classifier behind gradient reversal scaled by the ``grl_*``
schedule), ``entropy_weight`` (its speaker posterior pushed towards uniform
through the encoder only), ``adv_lr_factor``, ``adv_memory`` and
``adv_replay`` (a faster head, and replayed recent embeddings that train
the head only, so that it keeps up with the encoder).

With ``frozen_layers: true`` (``ser_ecapa_frozen_layers.yaml``) the encoder
is not trained: each utterance's layer features are computed once and
cached, a light head weights the layers and classifies
(:class:`LayerEmotionBrain`, the adversary on the weighted features), each
speaker's features are normalised with its own statistics
(``speaker_norm``), and a small grid (``select_grid``) is chosen on the
dev speakers before the test speakers are read.

``fold: null`` uses the prepared train/dev/test speaker split, ``fold: K``
tests on fold K's speakers, ``fold: all`` runs every fold and ``fold: 1,2``
the folds listed, then reports mean and spread; train, dev and test
speakers are checked to be disjoint.

To run::

    python recipes/emotion_recognition/train.py \\
        hparams/emotion_recognition/ser_adversarial.yaml \\
        --data_folder results/demo/corpus --output_folder results/ser/adv

``--debug`` runs two batches of two epochs; every yaml key can be
overridden on the command line (``--fold``, ``--seed``, ``--adv_weight``).
"""

import sys
import time
from collections import Counter
from functools import partial

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.distributed import main_process_only, run_on_main

from emotion_invariant.data.steps import training_steps
from emotion_invariant.distributed import DistributedBrain, ddp_destroy_group
from emotion_invariant.emotion.dataio import dataio_prep
from emotion_invariant.emotion.layer_eval import (
    evaluate_layers,
    summarize_runs,
)
from emotion_invariant.emotion.layer_model import point_name
from emotion_invariant.emotion.layer_run import (
    LayerData,
    check_emotion_settings,
    grid_points,
    point_run,
    prune_grid,
    select_on_dev,
    write_selection,
)
from emotion_invariant.emotion.metrics import classification_report
from emotion_invariant.emotion.model import setup_model
from emotion_invariant.emotion.report import (
    checkpoint_rank,
    evaluate,
)
from emotion_invariant.experiment import USER_ERRORS, requested_folds, start_run
from emotion_invariant.losses.adversarial import speaker_entropy_loss
from emotion_invariant.losses.speaker_means import between_speaker_share
from emotion_invariant.models.embedder import embed
from emotion_invariant.models.finetune import (
    head_lr_groups,
    hold_pretrained,
    scale_learning_rates,
)
from emotion_invariant.seeding import step_seed


class EmotionBrain(DistributedBrain):
    """ECAPA-TDNN emotion classifier with an optional speaker adversary."""

    # The adversary head is called or not by the switches (adv_weight,
    # replay); DDP tolerates a step where part of it gets no gradient.
    sometimes_unused = ("adversary",)

    def embed(self, wavs, lens):
        """Emotion embeddings ``[B, D]`` of padded waveforms."""
        return embed(self.modules, wavs, lens).squeeze(1)

    def represent(self, batch):
        """What the emotion head and the adversary see: ``[B, D]``."""
        wavs, lens = batch.sig
        return self.embed(wavs, lens)

    def classify(self, embeddings):
        """Emotion logits of :meth:`represent`'s output."""
        return self.modules.emotion_classifier(embeddings)

    def compute_forward(self, batch, stage):
        """Emotion logits; speaker logits too when training adversarially."""
        batch = batch.to(self.device)
        embeddings = self.represent(batch)
        logits = self.classify(embeddings)
        spk_logits = ent_logits = replay = None
        if stage == sb.Stage.TRAIN:
            self.lambda_ = self.hparams.grl_schedule(self.progress())
            self.hparams.adversary.set_lambda(self.lambda_)
            if self.hparams.adv_weight > 0:
                spk_logits = self.modules.adversary(embeddings)
                # Remembered embeddings train the head only (no gradient).
                replay = self.hparams.adversary_memory.replay(
                    partial(self.modules.adversary, reverse=False),
                    embeddings,
                    batch.spk_encoded.data.squeeze(1),
                    self.hparams.adv_replay,
                )
            if self.hparams.entropy_weight > 0:
                # The unwrapped module: this path gives the head no gradient,
                # so it needs no DDP synchronisation of its own.
                ent_logits = self.hparams.adversary(
                    embeddings, reverse=False, head_grad=False
                )
        return logits, spk_logits, ent_logits, replay

    def on_fit_start(self):
        """Recover the checkpoint, then move the replay memory to the device
        (it is not in ``modules``: a module without parameters cannot be
        wrapped for DDP)."""
        super().on_fit_start()
        self.hparams.adversary_memory.to(self.device)

    def compute_objectives(self, predictions, batch, stage):
        """Cross-entropy on emotions, plus the weighted adversary losses."""
        logits, spk_logits, ent_logits, replay = predictions
        emo = batch.emo_encoded.data.squeeze(1)
        weight = self.hparams.class_weights
        if weight is not None:
            weight = weight.to(logits.device)
        loss = F.cross_entropy(logits, emo, weight=weight)
        self.stats["emo_ce"] += loss.item()
        if spk_logits is not None:
            spk = batch.spk_encoded.data.squeeze(1)
            adv = F.cross_entropy(spk_logits, spk)
            loss = loss + self.hparams.adv_weight * adv
            self.stats["adv_ce"] += adv.item()
            correct = (spk_logits.argmax(-1) == spk).float().mean()
            self.stats["adv_acc"] += correct.item()
        if replay is not None:
            replay_logits, replay_spk = replay
            replay_ce = F.cross_entropy(replay_logits, replay_spk)
            loss = loss + self.hparams.adv_weight * replay_ce
            self.stats["replay_ce"] += replay_ce.item()
        if ent_logits is not None:
            ent = speaker_entropy_loss(ent_logits)
            loss = loss + self.hparams.entropy_weight * ent
            self.stats["entropy"] += ent.item()
        self.stats["batches"] += 1
        if stage != sb.Stage.TRAIN:
            self.targets.append(emo.cpu())
            self.outputs.append(logits.argmax(-1).cpu())
        return loss

    def init_optimizers(self):
        """One optimizer; the adversary head's learning rate times
        ``adv_lr_factor``, so that it keeps up with the encoder it chases."""
        self.optimizer = self.opt_class(
            head_lr_groups(
                self.modules.parameters(),
                self.modules.adversary.parameters(),
                self.hparams.adv_lr_factor,
            )
        )
        scale_learning_rates(self.optimizer)
        self.optimizers_dict = {"opt_class": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    def on_fit_batch_start(self, batch, should_step):
        """Seed torch from (seed, epoch, step): a run resumed mid-epoch draws
        dropout and replay samples as an unbroken run does."""
        epoch = self.hparams.epoch_counter.current
        torch.manual_seed(step_seed(self.hparams.seed, epoch, self.step))
        # An encoder started from a speaker model: frozen blocks and (with
        # freeze_bn) every batch norm keep their pretrained statistics.
        hold_pretrained(
            self.modules.embedding_model,
            self.hparams.frozen_blocks,
            self.hparams.freeze_bn,
            trainable=[],
            warm=False,
        )

    def on_stage_start(self, stage, epoch=None):
        """Reset the running statistics and the dev predictions."""
        self.epoch = epoch or 1
        self.stats = Counter()
        self.targets, self.outputs = [], []
        self.stage_start = time.perf_counter()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, anneal the learning rate, keep the best dev UA (from
        ``select_from_epoch`` on) and the latest epoch."""
        batches = max(1, self.stats.pop("batches", 0))
        stats = {"loss": stage_loss}
        stats.update({k: v / batches for k, v in self.stats.items()})
        if stage == sb.Stage.TRAIN:
            stats["lambda"] = round(getattr(self, "lambda_", 0.0), 4)
            stats["seconds"] = round(time.perf_counter() - self.stage_start)
            self.train_stats = stats
            return
        report = classification_report(
            torch.cat(self.targets).numpy(),
            torch.cat(self.outputs).numpy(),
            self.hparams.emotion_labels,
        )
        stats.update(UA=report["ua"], WA=report["wa"], F1=report["macro_f1"])
        if stage == sb.Stage.VALID:
            old_lr, new_lr = self.hparams.lr_annealing(epoch)
            sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
            scale_learning_rates(self.optimizer)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": old_lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"UA": report["ua"], "epoch": epoch},
                importance_keys=[
                    checkpoint_rank(self.hparams.select_from_epoch)
                ],
            )


class LayerEmotionBrain(EmotionBrain):
    """The emotion head on a frozen encoder's cached layer features.

    The encoder is not trained, so a batch is a tensor of features, not
    audio: the head weights, projects and classifies them; the adversary
    and the entropy term act on the weighted features, as
    :class:`EmotionBrain`'s act on the embedding.
    """

    def represent(self, batch):
        """The weighted layer features ``[B, layer_dim]``."""
        return self.modules.layer_head.pool(batch.feats.data)

    def classify(self, embeddings):
        """Emotion logits of the weighted features."""
        return self.modules.layer_head.classify(embeddings)

    def compute_objectives(self, predictions, batch, stage):
        """:class:`EmotionBrain`'s loss; in training, plus
        ``speaker_means_weight`` times the between-speaker share of the
        weighted features of every training utterance (without feature
        dropout, as the speaker probe sees them)."""
        loss = super().compute_objectives(predictions, batch, stage)
        weight = self.hparams.speaker_means_weight
        if stage == sb.Stage.TRAIN and weight > 0:
            features, speakers = self.hparams.speaker_set  # on the device
            pooled = self.modules.layer_head.pool(features, dropout=False)
            share = between_speaker_share(pooled, speakers)
            loss = loss + weight * share
            self.stats["speaker_share"] += share.item()
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """Seed torch from (seed, epoch, step), as :class:`EmotionBrain`;
        there is no encoder to hold."""
        epoch = self.hparams.epoch_counter.current
        torch.manual_seed(step_seed(self.hparams.seed, epoch, self.step))


def train_point(hparams, run_opts, data, point):
    """Train one grid point of a frozen-layer run; returns its run."""
    run = point_run(hparams, data, point)
    if hparams["speaker_means_weight"] > 0:  # moved once, read every step
        device = run_opts.get("device", "cpu")
        run["speaker_set"] = [t.to(device) for t in data.speaker_set()]
    hparams["train_logger"].log_stats({"grid point": point_name(point)})
    brain = LayerEmotionBrain(
        modules=run["modules"],
        opt_class=run["opt_class"],
        hparams=run,
        run_opts=run_opts,
        checkpointer=run["checkpointer"],
    )
    brain.fit(
        run["epoch_counter"],
        data.dataset("train"),
        data.dataset("dev"),
        train_loader_kwargs=run["train_dataloader_options"],
        valid_loader_kwargs=run["valid_dataloader_options"],
    )
    return run


def run_frozen_layers(hparams, run_opts):
    """Train a frozen-layer run's grid, choose on dev, evaluate the choice."""
    data = LayerData(hparams, run_opts.get("device", "cpu"))
    hparams["train_dataloader_options"], hparams["steps_per_epoch"] = (
        training_steps(
            data.training_size(),
            hparams["train_dataloader_options"],
            hparams["train_annotation"],
            debug=run_opts.get("debug", False),
        )
    )
    chosen, table = select_on_dev(
        grid_points(hparams),
        partial(train_point, hparams, run_opts, data),
        hparams["select_from_epoch"],
    )
    run_on_main(write_selection, args=[hparams, table, data])
    run_on_main(prune_grid, args=[hparams, chosen, table])
    main_process_only(evaluate_layers)(hparams, data, chosen, table)


def build(argv, fold=None):
    """Parse arguments, prepare data and build the Brain of one run.

    Arguments
    ---------
    argv : list of str
        ``hparams_file [--overrides]`` as on the command line.
    fold : str, optional
        The fold to train (default: the ``fold`` key, which must not be
        ``all`` here).

    Returns
    -------
    tuple
        ``(brain, hparams, datasets)`` with datasets ``train``, ``dev``
        and ``test``.
    """
    return build_run(*start_run(argv, fold, check_emotion_settings))


def build_run(hparams, run_opts):
    """:func:`build` once the run has started: its datasets and Brain."""
    datasets = dataio_prep(hparams)
    hparams["train_dataloader_options"], hparams["steps_per_epoch"] = (
        training_steps(
            len(datasets["train"]),
            hparams["train_dataloader_options"],
            hparams["train_annotation"],
            debug=run_opts.get("debug", False),
        )
    )
    setup_model(hparams)
    brain = EmotionBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    return brain, hparams, datasets


def fit(brain, hparams, datasets):
    """Train ``brain`` on the train split, keeping the best dev UA."""
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["dev"],
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["valid_dataloader_options"],
    )


def main(argv=None):
    """Prepare, train and evaluate every requested run; returns the summary."""
    argv = list(argv or sys.argv[1:])
    for fold in requested_folds(argv, check_emotion_settings):
        hparams, run_opts = start_run(argv, fold, check_emotion_settings)
        if hparams["frozen_layers"]:
            run_frozen_layers(hparams, run_opts)
            continue
        brain, hparams, datasets = build_run(hparams, run_opts)
        fit(brain, hparams, datasets)
        main_process_only(evaluate)(brain, hparams)
    return main_process_only(summarize_runs)(hparams)


if __name__ == "__main__":
    try:
        main()
        ddp_destroy_group()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
