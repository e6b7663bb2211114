#!/usr/bin/env python3
"""Recipe: emotion-invariant ECAPA-TDNN speaker verification.

Trains SpeechBrain's ECAPA-TDNN with AAM-softmax on two views of every
utterance, then evaluates emotional trials of speakers unseen in training.
The methods of "Learning Emotion-Invariant Speaker Representations for
Speaker Verification" are switched on in yaml, not here:

- ``copypaste_prob``: the second view is an emotion CopyPaste of the
  utterance with a same-speaker, other-emotion partner (else the utterance's
  own augmented copy, as in SpeechBrain's VoxCeleb recipe);
- ``erl_weight``: cosine consistency between an utterance and its view;
- ``mask_ratio``: energy-guided masking of the view's loudest frames.

``ecapa_supcon_aam.yaml`` adds the supervised contrastive loss with additive
angular margin (``supcon_weight``) over the views of each utterance;
``speakers_per_batch`` builds batches of a few speakers with several
utterances each, so it also finds same-speaker positives across utterances.

To run::

    python recipes/speaker_verification/train.py \\
        hparams/speaker_verification/ecapa_emotion_invariant.yaml \\
        --data_folder results/demo/corpus --output_folder results/sv/ei

``--debug`` runs two batches of two epochs; ``--seed``, ``--erl_weight`` and
every other yaml key can be overridden on the command line.
"""

import sys
import time
from collections import Counter

import speechbrain as sb
import torch
from speechbrain.utils.distributed import main_process_only

from emotion_invariant.augment.views import parallel_views, to_views
from emotion_invariant.data.steps import training_steps
from emotion_invariant.distributed import DistributedBrain, ddp_destroy_group
from emotion_invariant.experiment import USER_ERRORS, start_verification
from emotion_invariant.losses.consistency import (
    consistency_target,
    cosine_consistency,
)
from emotion_invariant.losses.terms import WeightedTerms
from emotion_invariant.models.embedder import embed
from emotion_invariant.models.finetune import hold_pretrained
from emotion_invariant.seeding import step_seed
from emotion_invariant.verification.data import dataio_prep
from emotion_invariant.verification.evaluation import embedded_eer, evaluate
from emotion_invariant.verification.model import (
    init_head,
    load_speaker_model,
    setup_finetuning,
)

#: The loss terms, as logged; each is weighted by ``<term>_weight``.
TERMS = ("aam", "erl", "supcon", "distill", "l2sp")


class SpeakerBrain(DistributedBrain):
    """ECAPA-TDNN on several views of each utterance.

    The training batch is the ``B`` utterances, then their ``B`` second
    views, then ``extra_views`` augmented copies (view-major rows). The
    losses are AAM-softmax on every row (``aam_weight``), the consistency
    loss pairing row ``i`` with row ``B + i`` (``erl_weight``) and SupCon
    with angular margin over the views of each utterance
    (``supcon_weight``).
    """

    @property
    def sometimes_unused(self):
        """DDP modules with steps without gradient: the AAM head at
        ``aam_weight: 0``, the encoder while the head warms up alone."""
        unused = []
        if self.hparams.aam_weight == 0:
            unused.append("classifier")
        if self.hparams.head_warmup_steps > 0:
            unused.append("embedding_model")
        return unused

    def on_fit_batch_start(self, batch, should_step):
        """Seed torch from (seed, epoch, step): a run resumed mid-epoch
        augments and masks each batch as an unbroken run does. When
        fine-tuning, the head warms up alone, and frozen parts keep their
        pretrained statistics."""
        hp = self.hparams
        epoch = hp.epoch_counter.current
        torch.manual_seed(step_seed(hp.seed, epoch, self.step))
        encoder = self.modules.embedding_model
        warm = self.optimizer_step < hp.head_warmup_steps
        hold_pretrained(
            encoder, hp.frozen_blocks, hp.freeze_bn, hp.encoder_trainable, warm
        )

    def compute_forward(self, batch, stage):
        """Embeddings, and when training the speaker logits of every view."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        if stage != sb.Stage.TRAIN:
            return self.embed(wavs, lens)

        hp = self.hparams
        spk, _ = batch.spk_id_encoded
        n = wavs.shape[0]
        wavs, lens, spk = parallel_views(
            wavs, lens, spk, batch.view_sig, hp.wav_augment, hp.extra_views
        )
        feats = self.modules.compute_features(wavs)
        if hp.mask_ratio > 0:
            rows = slice(0 if hp.mask_anchors else n, 2 * n)
            feats[rows] = self.modules.energy_mask(
                feats[rows], lens[rows], wavs=wavs[rows]
            )
        feats = self.modules.mean_var_norm(feats, lens)
        embeddings = self.modules.embedding_model(feats, lens)
        logits = self.modules.classifier(embeddings)
        pretrained = None
        if hp.teacher is not None:
            # The pretrained model's embedding of each (unmasked) anchor.
            with torch.no_grad():
                pretrained = hp.teacher(feats[:n], lens[:n])
        return logits, embeddings, lens, spk, pretrained

    def embed(self, wavs, lens):
        """Speaker embeddings ``[B, 1, D]`` of padded waveforms."""
        return embed(self.modules, wavs, lens)

    def compute_objectives(self, predictions, batch, stage):
        """Weighted AAM-softmax, cosine consistency and SupCon losses."""
        logits, embeddings, lens, spk, pretrained = predictions
        n = len(batch.id)
        hp = self.hparams
        terms = {}
        if hp.aam_weight > 0:
            terms["aam"] = hp.compute_cost(logits, spk, lens)
        if hp.erl_weight > 0:
            neutral = None
            if hp.erl_target == "neutral":
                neutral = hp.neutral_targets.to(self.device)[spk[:n, 0]]
            target = consistency_target(
                hp.erl_target, embeddings[:n], pretrained, neutral
            )
            terms["erl"] = cosine_consistency(target, embeddings[n : 2 * n])
        if hp.distill_weight > 0:
            terms["distill"] = cosine_consistency(pretrained, embeddings[:n])
        if hp.l2sp_weight > 0:
            terms["l2sp"] = hp.l2sp(self.modules.embedding_model)
        if hp.supcon_weight > 0:
            features = to_views(embeddings, embeddings.shape[0] // n)
            terms["supcon"] = hp.supcon_loss(features, spk[:n].squeeze(-1))
        self.view_kinds.update(batch.view_kind)
        return self.terms.add(terms, self.device)

    def evaluate_batch(self, batch, stage):
        """Collect embeddings: dev speakers are scored, not classified."""
        with torch.no_grad():
            embeddings = self.compute_forward(batch, stage)
        for uid, emb in zip(batch.id, embeddings.squeeze(1).cpu()):
            self.dev_embeddings[uid] = emb
        return torch.zeros((), device=self.device)

    def on_fit_start(self):
        """Move the pretrained copies next to the model, then recover."""
        super().on_fit_start()
        for reference in (self.hparams.teacher, self.hparams.l2sp):
            if reference is not None:
                reference.to(self.device)

    def on_stage_start(self, stage, epoch=None):
        """Reset statistics; draw new crops, views and batches each epoch."""
        if stage != sb.Stage.TRAIN:
            self.dev_embeddings = {}
            return
        hp = self.hparams
        for sampler in (hp.view_maker, hp.batch_sampler, hp.epoch_sampler):
            if sampler is not None:
                sampler.set_epoch(epoch or 0)
        self.stage_start = time.perf_counter()
        self.terms = WeightedTerms(
            {term: getattr(hp, f"{term}_weight") for term in TERMS}
        )
        self.view_kinds = Counter()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, anneal the learning rate, checkpoint on dev EER."""
        if stage == sb.Stage.TRAIN:
            seconds = round(time.perf_counter() - self.stage_start)
            self.train_stats = {"loss": stage_loss, "seconds": seconds}
            self.train_stats.update(self.terms.means())
            total = sum(self.view_kinds.values()) or 1
            for kind, count in sorted(self.view_kinds.items()):
                self.train_stats[f"view_{kind}"] = round(count / total, 3)
            return
        dev_eer = embedded_eer(self.dev_embeddings, self.hparams.dev_trials)
        if stage == sb.Stage.VALID:
            old_lr, new_lr = self.hparams.lr_annealing(epoch)
            sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": old_lr},
                train_stats=self.train_stats,
                valid_stats={"EER": dev_eer},
            )
            self.checkpointer.save_and_keep_only(
                meta={"EER": dev_eer}, min_keys=["EER"]
            )


def build(argv):
    """Parse arguments, prepare data and build the Brain.

    Arguments
    ---------
    argv : list of str
        ``hparams_file [--overrides]`` as on the command line.

    Returns
    -------
    tuple
        ``(brain, hparams, train_data, valid_data)``.
    """
    hparams, run_opts = start_verification(argv)
    train, valid, encoder = dataio_prep(hparams)
    hparams["train_dataloader_options"], _ = training_steps(
        len(train),
        hparams["train_dataloader_options"],
        hparams["train_annotation"],
        debug=run_opts.get("debug", False),
    )
    load_speaker_model(hparams, len(encoder))
    setup_finetuning(hparams)
    brain = SpeakerBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    targets = init_head(brain.modules, hparams, encoder, brain.device)
    if targets is not None:
        hparams["neutral_targets"] = targets
        brain.hparams.neutral_targets = targets  # Brain holds a copy
    return brain, hparams, train, valid


def main(argv=None):
    """Prepare, train and evaluate; returns the evaluation report."""
    brain, hparams, train, valid = build(argv or sys.argv[1:])
    brain.fit(
        hparams["epoch_counter"],
        train,
        valid,
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["valid_dataloader_options"],
    )
    return main_process_only(evaluate)(brain, hparams)


if __name__ == "__main__":
    try:
        main()
        ddp_destroy_group()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
