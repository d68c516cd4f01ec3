# The tutorial's commands. `make demo` and `make test` are all a new reader needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UI_PORT ?= 5000
# Keep MLflow's anonymous usage telemetry off in everything make starts.
export MLFLOW_DISABLE_TELEMETRY := true
# `mlflow ui` would also start background job workers for GenAI features this tutorial never uses.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false

.PHONY: demo train test lint ui clean

# The virtual environment, rebuilt whenever a requirements file changes.
$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed requirements-test.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

## demo: install, train three settings of each model, then say what to open
demo: train
	@echo
	@echo "Done. Browse the runs with:  make ui   (then open http://127.0.0.1:$(UI_PORT))"

## train: three hyperparameter settings per model family, so the UI has runs to compare
train: $(BIN)/.installed
	$(BIN)/python train_rfc.py --n-estimators 50 --max-depth 3 --run-name rf-shallow
	$(BIN)/python train_rfc.py --n-estimators 100 --run-name rf-default
	$(BIN)/python train_rfc.py --n-estimators 300 --min-samples-leaf 5 --max-features 0.5 --run-name rf-smooth
	$(BIN)/python train_ann.py --hidden-layers 16 --run-name mlp-small
	$(BIN)/python train_ann.py --hidden-layers 64,32 --alpha 0.01 --run-name mlp-two-layers
	$(BIN)/python train_ann.py --hidden-layers 8 --alpha 1.0 --learning-rate 0.01 --run-name mlp-strong-penalty

## test: the same set-up plus the test tools, then every test
test: $(BIN)/.installed-test
	$(BIN)/python -m pytest -n 2

## lint: ruff, the pinned version
lint: $(BIN)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## ui: MLflow's UI on this machine only (127.0.0.1), reading the tutorial's store
ui: $(BIN)/.installed
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(UI_PORT)

## clean: forget every run (the store) but keep the virtual environment
clean:
	rm -rf mlflow.db mlruns
