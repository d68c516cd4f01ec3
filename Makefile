# The tutorial's commands. `make demo` and `make test` are all a new reader needs.
PYTHON ?= python3
UI_PORT ?= 5000
# The SQLite store `make ui` opens: the tutorial's own, or another file (make ui STORE=old-runs.db).
STORE ?= mlflow.db
SERVE_PORT ?= 5001
# Keep MLflow's anonymous usage telemetry off in everything make starts.
export MLFLOW_DISABLE_TELEMETRY := true
# `mlflow ui` would also start background job workers for GenAI features this tutorial never uses.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false

# The Python environment everything runs in:
# - yours, if one is active (VIRTUAL_ENV is set): make uses it as it is, and installs only the
#   extra tools that test, lint, bench, screenshots and install-* need (it says so);
# - else .venv here (activated or not), which make creates on the first run, updates when it
#   lacks what requirements.txt pins, and otherwise leaves alone (one you built yourself too).
ifeq ($(VIRTUAL_ENV),)
ENV_DIR := $(CURDIR)/.venv
else
ENV_DIR := $(VIRTUAL_ENV)
endif
ifeq ($(ENV_DIR),$(CURDIR)/.venv)
ENV_NAME := .venv
else
ENV_NAME := $(ENV_DIR)
endif
# So `python`, `mlflow`, `ruff` below are the environment's, as after `source .venv/bin/activate`,
# and serve_model.sh and tracking_server.sh find its mlflow too. bash, not make's default sh:
# then every line runs in a shell that looks the commands up on this PATH (make's own shortcut
# for simple lines may use the PATH make started with: macOS's make 3.81 does).
export PATH := $(ENV_DIR)/bin:$(PATH)
SHELL := /bin/bash

# A recipe line that stops with one error line if port $(1) of 127.0.0.1 is taken, before a
# server would start and end in uvicorn's traceback: $(2) guesses by whom, $(3) says what to run.
# tutorial_store.py is the one home of "is this port free" (serve_model.sh asks it too).
port_free = @python tutorial_store.py port-free 127.0.0.1 $(1) \
	|| { echo "error: port $(1) is in use ($(2)); choose one with: $(3)" >&2; exit 1; }

# What the environment lacks of a requirements file's pins, in a few words; empty if nothing.
# requirements/check.py reads the installed versions: no pip, no network, a tenth of a second.
lacks = $(shell "$(ENV_DIR)/bin/python" requirements/check.py $(1) 2>&1)

# Installs go through uv (seconds, where pip takes a minute or more): the uv on your PATH if
# there is one, else this pinned release, installed from PyPI into .venv by venv's own pip (so
# it also works where the system Python refuses `pip install`, PEP 668). requirements.txt stays
# the only list of pins; `pip install -r requirements.txt` installs the very same.
UV_VERSION := 0.13.9
HOST_UV := $(shell command -v uv 2>/dev/null)
# --compile-bytecode: as pip does. uv leaves it out by default, and then every script start pays
# for compiling MLflow's modules again where Python may not cache them (PYTHONDONTWRITEBYTECODE).
# Evaluated when a recipe runs: after CREATE_VENV, .venv's own uv exists.
UV = $(or $(HOST_UV),$(shell test -x "$(ENV_DIR)/bin/uv" && echo "$(ENV_DIR)/bin/uv"))
uv_install = "$(1)" pip install --quiet --compile-bytecode --python "$(ENV_DIR)/bin/python"
# pip, where no uv is around (an environment you built yourself, say).
install = $(if $(UV),$(call uv_install,$(UV)),python -m pip install --quiet)

define CREATE_VENV
@echo "make: creating .venv, installing requirements.txt and the tutorial's modules with uv (first run)"
$(PYTHON) -m venv .venv
$(if $(HOST_UV),,.venv/bin/python -m pip install --quiet uv==$(UV_VERSION))
$(call uv_install,$(or $(HOST_UV),.venv/bin/uv)) -r requirements.txt
$(call uv_install,$(or $(HOST_UV),.venv/bin/uv)) --no-deps -e .
endef

define UPDATE_VENV
@echo "make: .venv does not match requirements.txt ($(call lacks,requirements.txt)): installing it"
$(install) -r requirements.txt
$(install) --no-deps -e .
endef

# A target's extra tools (one of requirements/*.txt), installed only if the environment lacks them.
define install_extras
$(if $(call lacks,$(1)),@echo "make: installing $(1) into $(ENV_NAME) (make $@ needs it)"
$(install) -r $(1))
endef

.PHONY: env demo train serve-once serve test lint ui clean

# Every target but clean runs `env` first. The decisions are made when it runs, so `make -n`
# shows only what would really be done.
ifeq ($(ENV_NAME),.venv)
# No .venv yet: create it. A .venv without what requirements.txt pins (it changed since .venv was
# built, say): install that. Else nothing.
env:
	$(if $(wildcard .venv/bin/python),$(if $(call lacks,requirements.txt),$(UPDATE_VENV)),$(CREATE_VENV))
else
# Yours: used as it is, after one line saying so (and whether it lacks any pins).
env:
	$(if $(shell test -x "$(ENV_DIR)/bin/python" && echo yes),,$(error VIRTUAL_ENV is $(ENV_DIR) but it has no bin/python: activate a working environment or unset VIRTUAL_ENV))
	@echo "make: using the active virtual environment $(ENV_DIR)$(if $(call lacks,requirements.txt), (which differs from requirements.txt: $(call lacks,requirements.txt)))"
endif

## demo: train six runs, promote the best through the gate, see the gate refuse a weaker one,
## serve the champion for one request, then say what to open
demo: serve-port-free train
	python register_model.py
	@echo
	@echo "A weaker run tries to take the champion's place. The promotion gate scores both on 114"
	@echo "held-back rows no run trained on (not each run's own test split), and should refuse it:"
	@echo "python register_model.py --run-name rf-shallow"
	@if python register_model.py --run-name rf-shallow; then \
		echo "error: the gate let rf-shallow through" >&2; exit 1; \
	else echo "(exit 1: refused, as expected; the champion stays)"; fi
	$(SERVE_ONCE)
	@echo
	@echo "Done. Browse the runs and the registered model with:  make ui"
	@echo "then open http://127.0.0.1:$(UI_PORT)"

# Checked before the demo trains anything, so that a busy port costs seconds, not a retrain.
.PHONY: serve-port-free
serve-port-free: env
	$(call port_free,$(SERVE_PORT),another server?,make demo SERVE_PORT=5011)

## serve-once: start serve_model.sh, send the sample rows with predict.py --url, stop the server
serve-once: env
	$(SERVE_ONCE)

# One recipe shared by demo and serve-once: the server runs in its own process group, so the trap
# stops it (and its workers) however the loop ends.
# The port is checked again here: another server may have taken it while the demo trained.
define SERVE_ONCE
$(call port_free,$(SERVE_PORT),another server?,make $@ SERVE_PORT=5011)
@echo "Starting ./serve_model.sh on port $(SERVE_PORT) for one request (log: .serve-once.log)"
@setsid env PORT=$(SERVE_PORT) ./serve_model.sh > .serve-once.log 2>&1 & \
server=$$!; trap 'kill -- -$$server 2>/dev/null; wait $$server 2>/dev/null' EXIT; \
for second in $$(seq 120); do \
	kill -0 $$server 2>/dev/null || { cat .serve-once.log; exit 1; }; \
	grep -q "^Serving" .serve-once.log && python predict.py \
		--url http://127.0.0.1:$(SERVE_PORT) > .serve-once.out 2>/dev/null && break; \
	sleep 1; \
done; \
echo "python predict.py --url http://127.0.0.1:$(SERVE_PORT)"; cat .serve-once.out; \
echo "Server stopped."
endef

## train: three hyperparameter settings per model family, so the UI has runs to compare
## (two at a time, a forest beside a network: each is one process, and this machine has cores)
train: env
	@# Two processes must not both create the store's tables: a new store is made first, alone.
	$(if $(wildcard mlflow.db),,mlflow db upgrade "sqlite:///$(CURDIR)/mlflow.db")
	$(call train_pair,train_rfc.py --n-estimators 50 --max-depth 3 --run-name rf-shallow,train_ann.py --hidden-layers 16 --run-name mlp-small)
	$(call train_pair,train_rfc.py --n-estimators 100 --run-name rf-default,train_ann.py --hidden-layers 64$(comma)32 --alpha 0.01 --run-name mlp-two-layers)
	$(call train_pair,train_rfc.py --n-estimators 300 --min-samples-leaf 5 --max-features 0.5 --run-name rf-smooth,train_ann.py --hidden-layers 8 --alpha 1.0 --learning-rate 0.01 --run-name mlp-strong-penalty)

comma := ,
# Two training runs side by side, into two experiments of the one store; each one's lines are
# printed when both have finished, so that they do not interleave. Fails if either failed.
define train_pair
@echo "python $(1) & python $(2)"
@python $(1) > .train-1.log 2>&1 & first=$$!; \
python $(2) > .train-2.log 2>&1; second=$$?; wait $$first; first=$$?; \
cat .train-1.log .train-2.log; rm -f .train-1.log .train-2.log; \
[ $$first -eq 0 ] && [ $$second -eq 0 ]
endef

## test: the unit tests first (make test-unit), then the README, the quickstart and chapters 1-8
## (with their tools, requirements/test.txt); about 12 minutes on two cores. The topic rooms have
## their own targets, below.
test: test-unit
	python -m pytest -n 2 -m "not room and not unit"

## test-unit: the pure functions (tests/unit/: the gate's rules, the store's, the flags'...), in
## seconds, no store or server; make test runs them first
.PHONY: test-unit
test-unit: env
	$(call install_extras,requirements/test.txt)
	python -m pytest -q -m unit tests/unit

# The topic rooms, each a folder with its page and code, and its tests (docs/testing.md):
## test-rollout / test-spark / test-team-server / test-team-stack / test-old-stores / test-bench / test-container / test-monitoring:
## one room's tests (test-monitoring and test-team-stack install requirements/monitoring.txt, Evidently)
## (test-old-stores builds MLflow 2 and an older MLflow 3 from PyPI; test-bench: the benchmark's smoke test;
## test-container: Docker as root, docker.io and debootstrap)
ROOM_TARGETS := test-rollout test-spark test-team-server test-team-stack test-old-stores test-bench test-container test-monitoring
.PHONY: $(ROOM_TARGETS) test-rooms test-all
$(ROOM_TARGETS): test-%: env
	$(call install_extras,requirements/test.txt)
	$(if $(filter test-monitoring test-team-stack,$@),$(call install_extras,requirements/monitoring.txt))
	$(ENSURE_UV)
	python -m pytest -n 2 --dist loadgroup -m $(subst -,_,$*)

## test-rooms: every room's tests, in one session (they share its trained stores)
test-rooms: env
	$(call install_extras,requirements/test.txt)
	$(call install_extras,requirements/monitoring.txt)
	$(ENSURE_UV)
	python -m pytest -n 2 --dist loadgroup -m room

## test-all: everything CI runs: make test, make test-rooms, make test-pythons
test-all: test test-rooms test-pythons

## test-quick: the edit loop's subset, under 2 minutes: the quickstart and its promotion, the
## registry and the gate, the docs' own checks, and chapters 1-2 as written (both training scripts)
.PHONY: test-quick
test-quick: env
	$(call install_extras,requirements/test.txt)
	python -m pytest -n 2 --quick

## test-pythons: the tutorial end to end under Python 3.11, 3.12 and 3.13 (each found by
## version: python3.X or uv), in fresh clones in a folder with a space (tests/pythons.sh)
.PHONY: test-pythons
test-pythons: env
	$(ENSURE_UV)
	tests/pythons.sh

define ENSURE_UV
$(if $(UV),,@echo "make: installing uv==$(UV_VERSION) into $(ENV_NAME) (make test-pythons needs it)"
python -m pip install --quiet uv==$(UV_VERSION))
endef

## lint: ruff, the pinned version (requirements/lint.txt: lint needs none of the test extras)
lint: env
	$(call install_extras,requirements/lint.txt)
	ruff check .
	ruff format --check .

## ui: MLflow's UI on this machine only (127.0.0.1), reading the tutorial's store (STORE=old-runs.db: another SQLite file here)
ui: env
	$(call port_free,$(UI_PORT),another mlflow ui?,make ui UI_PORT=5010)
	@# --lifespan off: Ctrl-C then stops it quietly (team-server/tracking_server.sh says why)
	@test -f "$(STORE)" || { echo "error: no store at $(STORE): train first (make train), or name another with STORE=" >&2; exit 1; }
	mlflow ui --backend-store-uri "sqlite:///$(abspath $(STORE))" --host 127.0.0.1 --port $(UI_PORT) --workers 1 --uvicorn-opts "--lifespan off"

## serve: serve the champion on http://127.0.0.1:$(SERVE_PORT) until Ctrl-C
serve: env
	PORT=$(SERVE_PORT) ./serve_model.sh

## clean: forget every run (mlflow.db, mlruns/, the team server's server/, the team stack's team-server/stack/, basic_auth.db and team-server/basic-auth.env, Spark's scored/, rollout/state/, the old stores' old-project/ and their older MLflows' .venv-mlflow2 and .venv-mlflow3-older); keep .venv
clean:
	@# First stop what rollout.py left running: each of its pid files names a process group.
	@for pid in rollout/state/*.pid; do [ -f "$$pid" ] && kill -- -"$$(cat "$$pid")" 2>/dev/null; done; true
	@# And what team-server/team_stack.py left running (SIGKILL: its data is deleted next).
	@for pid in team-server/*/*.pid; do [ -f "$$pid" ] && kill -9 -- -"$$(cat "$$pid")" 2>/dev/null; done; true
	rm -rf mlflow.db mlruns served server team-server/stack team-server/restored team-server/backups scored basic_auth.db team-server/basic-auth.env rollout/state .serve-once.log .serve-once.out .train-*.log old-project old-runs.db container/build monitoring/captured mlflow2.json old-server before.json before.csv .venv-mlflow2 .venv-mlflow3-older

## bench: what tracking, the gate, serving, Spark and a loaded team server cost; writes docs/benchmarks.md (apt: hyperfine wrk, and Java 17+ for Spark)
.PHONY: bench
bench: env
	$(call install_extras,requirements/bench.txt)
	$(call install_extras,requirements/spark.txt)
	$(call install_extras,requirements/team.txt)
	$(call install_extras,requirements/monitoring.txt)
	python benchmarks/run.py

## screenshots: retake docs/images/ui-*.png from a fresh demo in a temporary store (apt: chromium)
.PHONY: screenshots
screenshots: env
	$(call install_extras,requirements/browser.txt)
	python -m testbeds.ui_tour

## server: a tracking server for a team on http://127.0.0.1:5050 (SQLite and artifacts in server/)
## install-team / install-spark: requirements/team.txt (PostgreSQL driver, boto3) / spark.txt (PySpark)
.PHONY: server install-team install-spark
server: env
	./team-server/tracking_server.sh
install-team: env
	$(call install_extras,requirements/team.txt)
install-spark: env
	$(call install_extras,requirements/spark.txt)
