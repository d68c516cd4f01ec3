# What the tutorial's shell scripts share, in one place: serve_model.sh, team-server/
# tracking_server.sh and container/{build,run}_image.sh source it (it runs nothing itself). Each
# function ends the script with one line on stderr and a non-zero exit when it cannot do its job.
#
#   no_flags "e.g. PORT=5011 ./serve_model.sh" "$@"   # --help prints the header; a flag is refused
#   use_mlflow                 # the active environment's mlflow, else .venv's; sets $python
#   use_store                  # exports MLFLOW_TRACKING_URI: mlflow.db at the repository root
#   checked_version NAME ALIAS VERSION   # prints the version served, its MLmodel checked
#   check_answer               # ANSWER is labels or probabilities
#   probabilities_copy NAME VERSION FOLDER   # that version saved again to answer predict_proba
#   port_free HOST PORT        # or one line naming the port
#   need_docker                # docker on the PATH and a daemon that answers
#
# $tutorial_repo is the repository root, wherever the script is called from.

tutorial_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# No flags: every setting is an environment variable. --help prints the calling script's
# header (its comment lines up to `set -euo pipefail`).
no_flags() {
    local example="$1"
    shift
    case "${1:-}" in
        "") ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *)
            echo "error: $(basename "$0") takes no flags (got $1); settings are environment" \
                "variables, $example (see --help)" >&2
            exit 2
            ;;
    esac
}

# Use the mlflow of the active environment, else the one `make` installed into .venv.
use_mlflow() {
    if ! command -v mlflow >/dev/null; then
        if [ -x "$tutorial_repo/.venv/bin/mlflow" ]; then
            PATH="$tutorial_repo/.venv/bin:$PATH"
        else
            echo "error: mlflow not found; run 'make demo' or activate the virtual environment" >&2
            exit 1
        fi
    fi
    python="$(dirname "$(command -v mlflow)")/python"
    [ -x "$python" ] || python=python3
}

# The store (tutorial_store.py): mlflow.db at the repository root, unless MLFLOW_TRACKING_URI
# names another. Without one, a line saying what to run first (MLflow would create an empty
# store to find nothing in).
use_store() {
    local store
    store="$("$python" "$tutorial_repo/tutorial_store.py" store)" || exit 1
    export MLFLOW_TRACKING_URI="$store"
}

# The alias, pinned to the version it points at now (or VERSION, when set), and that version's
# MLmodel checked by check_model.py (YAML, no model loaded): a model that is not scikit-learn in
# skops format, or asks to trust types you have not listed, is one line here.
checked_version() {
    "$python" "$tutorial_repo/tutorial_store.py" version \
        --model-name "$1" --alias "$2" --version "$3" || exit 1
}

# A busy port would end in a long uvicorn traceback; say it in one line instead.
port_free() {
    if ! "$python" "$tutorial_repo/tutorial_store.py" port-free "$1" "$2"; then
        echo "error: port $2 on $1 is in use (another server?); choose one with PORT=..." >&2
        exit 1
    fi
}

# A Docker daemon that answers: `docker info` fails within seconds when there is none.
need_docker() {
    local why
    if ! command -v docker >/dev/null; then
        echo "error: docker not found; install Docker (https://docs.docker.com/engine/install/)" >&2
        exit 1
    fi
    if ! why="$(docker info --format '{{.ServerVersion}}' 2>&1)"; then
        echo "error: no Docker daemon answers ($(echo "$why" | grep -v '^$' | tail -n 1));" \
            "start Docker, or point DOCKER_HOST at one" >&2
        exit 1
    fi
}

# ANSWER: `labels` (the default) or `probabilities`, each class's probability; else one line.
check_answer() {
    case "$ANSWER" in
        labels | probabilities) ;;
        *) echo "error: ANSWER must be labels or probabilities, got '$ANSWER'" >&2; exit 2 ;;
    esac
}

# The checked version saved again in FOLDER with MLflow's pyfunc_predict_fn="predict_proba"
# (`predict.py --probabilities-model`), and that copy checked again once saved.
probabilities_copy() {
    "$python" "$tutorial_repo/predict.py" --model-name "$1" --version "$2" \
        --probabilities-model "$3" >/dev/null || exit 1
}
