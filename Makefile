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

.PHONY: corpus demo ablation ablation-run ser ser-run supcon supcon-run \
	test lint espeak clean

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
ROW_baseline :=
ROW_copypaste := --copypaste_prob=1.0
ROW_copypaste_erl := --copypaste_prob=1.0 --erl_weight=1.0
ROW_copypaste_erl_mask := --copypaste_prob=1.0 --erl_weight=1.0 \
	--mask_ratio=0.1 --mask_prob=0.5
ROWS := baseline copypaste copypaste_erl copypaste_erl_mask

corpus: $(STAMP) espeak
	$(PY) -m emotion_invariant.data.synth --out $(DEMO_DATA) --jobs $(JOBS)

# Baseline and emotion-invariant ECAPA with the same budget, then the
# per-condition comparison.
demo: corpus
	$(PY) $(SV)/train.py $(SV_HP)/ecapa_baseline.yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --output_folder=$(DEMO_DIR)/baseline/$(SEED)
	$(PY) $(SV)/train.py $(SV_HP)/ecapa_emotion_invariant.yaml \
		--seed=$(SEED) --data_folder=$(DEMO_DATA) \
		--output_folder=$(DEMO_DIR)/emotion_invariant/$(SEED)
	$(PY) $(SV)/compare.py --out $(DEMO_DIR)/comparison.md \
		baseline=$(DEMO_DIR)/baseline/$(SEED) \
		emotion-invariant=$(DEMO_DIR)/emotion_invariant/$(SEED)

# The four ablation rows (overrides on one yaml) over $(SEEDS).
ablation: corpus
	@for seed in $(SEEDS); do for row in $(ROWS); do \
		$(MAKE) --no-print-directory ablation-run ROW=$$row SEED=$$seed \
			|| exit 1; \
	done; done
	$(PY) $(SV)/compare.py --out $(ABLATION_DIR)/ablation.md \
		$(foreach row,$(ROWS),$(row)=$(subst $(space),$(comma),$(foreach seed,$(SEEDS),$(ABLATION_DIR)/$(row)/$(seed))))

ablation-run:
	$(PY) $(SV)/train.py $(SV_HP)/ecapa_base.yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --experiment=$(ROW) \
		--output_folder=$(ABLATION_DIR)/$(ROW)/$(SEED) $(ROW_$(ROW))

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

# SupCon-AAM: AAM only, SupCon only, SupCon+AAM, SupCon+AAM with the
# emotion-invariant methods, as overrides of ecapa_supcon_aam.yaml.
SUPCON_DIR ?= results/supcon
SC_aam := --supcon_weight=0
SC_supcon := --aam_weight=0
SC_supcon_aam :=
SC_supcon_aam_ei := $(ROW_copypaste_erl_mask)
SC_ROWS := aam supcon supcon_aam supcon_aam_ei

supcon: corpus
	@for seed in $(SEEDS); do for row in $(SC_ROWS); do \
		$(MAKE) --no-print-directory supcon-run ROW=$$row SEED=$$seed \
			|| exit 1; \
	done; done
	$(PY) $(SV)/compare.py --out $(SUPCON_DIR)/comparison.md \
		$(foreach row,$(SC_ROWS),$(row)=$(subst $(space),$(comma),$(foreach seed,$(SEEDS),$(SUPCON_DIR)/$(row)/$(seed))))

supcon-run:
	$(PY) $(SV)/train.py $(SV_HP)/ecapa_supcon_aam.yaml --seed=$(SEED) \
		--data_folder=$(DEMO_DATA) --experiment=$(ROW) \
		--output_folder=$(SUPCON_DIR)/$(ROW)/$(SEED) $(SC_$(ROW))

test: $(STAMP) espeak
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/yamllint hparams .ci

clean:
	rm -rf $(DEMO_DIR)
