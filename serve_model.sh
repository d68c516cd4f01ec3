#!/usr/bin/env bash
# Serve the champion model over HTTP with `mlflow models serve`.
#
# What you learn here: a registered model is served by name and alias, never by path: at start
# the alias is resolved to the version it points at, so promoting or rolling back
# (register_model.py) changes what the next server start serves. Before the server loads that
# version, its MLmodel is checked against check_model.py's list. The last line is the lesson:
#   mlflow models serve --model-uri models:/<name>/<version> --env-manager local

#
#   ./serve_model.sh                  # http://127.0.0.1:5001, the store at the repository root
#   PORT=6000 ./serve_model.sh        # another port
#   WORKERS=2 ./serve_model.sh        # two worker processes (helps only with cores to spare)
#   VERSION=3 ./serve_model.sh        # version 3, whatever the alias says (rollout.py's slots)
#   ANSWER=probabilities ./serve_model.sh   # each class's probability instead of the label
#   ENV_MANAGER=uv ./serve_model.sh   # in an environment of its own, built from its requirements
#
# Settings (environment variables, defaults in brackets):
#   PORT [5001]   MODEL_NAME [breast-cancer-classifier]   ALIAS [champion]   WORKERS [1]
#   VERSION [unset]: serve this version number instead of the alias's, so that the server keeps
#     saying which version it serves while the alias moves on.
#   HOST [127.0.0.1]: only this machine can connect. HOST=0.0.0.0 lets anyone on your network
#     send requests: the model server has no authentication at all.
#   ANSWER [labels]: `probabilities` answers a list per row, the classes' probabilities in the
#     order of the model's classes (its MLmodel's metadata names them; predict.py --url reads
#     them). The checked version is saved again by `predict.py --probabilities-model` in
#     SERVED_FOLDER/<name>-v<N>-port<PORT>/ with MLflow's pyfunc_predict_fn="predict_proba",
#     checked again, and served from there.
#   SERVED_FOLDER [<repository>/served]: where ANSWER=probabilities keeps that copy (git-ignored).
#   ENV_MANAGER [local]: `local` serves in this Python environment. `uv` builds the model its
#     own environment from the requirements it was logged with (every package pinned) and
#     serves in it: prefer it where the server's environment is not the trainer's. The first
#     start downloads and installs (minutes); later starts reuse the environment.
#   MLFLOW_TRACKING_URI [sqlite:///<repository>/mlflow.db]: the store the model is read from.
set -euo pipefail
# The shared steps (finding mlflow, the store, checking the version, a free port): tutorial_shell.sh.
source "$(dirname "${BASH_SOURCE[0]}")/tutorial_shell.sh"
no_flags "e.g. PORT=5011 ./serve_model.sh" "$@"

repo="$tutorial_repo"
PORT="${PORT:-5001}"
HOST="${HOST:-127.0.0.1}"
MODEL_NAME="${MODEL_NAME:-breast-cancer-classifier}"
ALIAS="${ALIAS:-champion}"
WORKERS="${WORKERS:-1}"
VERSION="${VERSION:-}"
ANSWER="${ANSWER:-labels}"
ENV_MANAGER="${ENV_MANAGER:-local}"
check_answer
case "$ENV_MANAGER" in
    local | uv) ;;
    *) echo "error: ENV_MANAGER must be local or uv, got '$ENV_MANAGER'" >&2; exit 2 ;;
esac
use_mlflow
use_store

# The alias, pinned to the version it points at now (or VERSION): the version checked is the
# version served. check_model.py reads that version's MLmodel (YAML, no model loaded) and
# refuses, in one line, a model that is not scikit-learn in skops format or asks to trust types
# you have not listed.
version="$(checked_version "$MODEL_NAME" "$ALIAS" "$VERSION")"
model_uri="models:/$MODEL_NAME/$version"
if [ "$ENV_MANAGER" = uv ] && ! command -v uv >/dev/null; then
    echo "error: ENV_MANAGER=uv needs uv on the PATH (pip install uv)" >&2
    exit 1
fi

port_free "$HOST" "$PORT"

if [ "$ANSWER" = probabilities ]; then
    # The same checked version, saved again to answer predict_proba; checked again once saved.
    model_uri="${SERVED_FOLDER:-$repo/served}/$MODEL_NAME-v$version-port$PORT"
    probabilities_copy "$MODEL_NAME" "$version" "$model_uri"
fi

echo "Serving models:/$MODEL_NAME@$ALIAS (version $version) on http://$HOST:$PORT"
[ "$ANSWER" = labels ] || echo "Answering each class's probability (from $model_uri)"
[ "$ENV_MANAGER" = local ] || echo "In an environment uv builds from the model's requirements (the first start takes minutes)"
echo "Try it from another terminal:"
if [ "$MODEL_NAME" = breast-cancer-classifier ]; then  # the tutorial's sample rows fit it
    request="data/sample_request.json"
    [ "$PWD" = "$repo" ] || request="$repo/$request"
    echo "  curl -s http://$HOST:$PORT/invocations -H 'Content-Type: application/json' --data @$request"
else  # rows of your own: predict.py sends the columns this model's signature names
    echo "  python predict.py --url http://$HOST:$PORT --model-name $MODEL_NAME --data <a CSV of your rows>"
fi
echo

# --env-manager local: serve with this Python environment. uv (ENV_MANAGER=uv) builds the
# model's own from its pinned requirements: minutes the first time, and offline it fails.
exec mlflow models serve --model-uri "$model_uri" --env-manager "$ENV_MANAGER" \
    --host "$HOST" --port "$PORT" --workers "$WORKERS"
