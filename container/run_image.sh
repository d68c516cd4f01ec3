#!/usr/bin/env bash
# Run the champion's image on this machine: `docker run`, listening on 127.0.0.1 only.
#
# What you learn here: the image serves exactly the version it was built from, whatever the
# alias says today; this script asks the registry which version `champion` points at now and
# runs that version's image, <name>:v<N>. Inside, the image's own MLflow serves the model with
# the very command serve_model.sh uses, so it answers the same JSON on the same routes:
#   docker run --network host --user nobody <name>:v<N> \
#       mlflow models serve --model-uri /opt/ml/model --env-manager local --host 127.0.0.1 ...
#
#   ./container/run_image.sh                 # http://127.0.0.1:5070
#   PORT=6000 WORKERS=2 ./container/run_image.sh
#   VERSION=3 ./container/run_image.sh       # version 3's image, whatever the alias says
#   ANSWER=probabilities ./container/run_image.sh    # its image that answers probabilities
#
# Why not the image's default command: it starts nginx on port 8080 of every network interface,
# in front of uvicorn on 8000. Published with `docker run -p 127.0.0.1:5070:8080` that is fine
# (Docker forwards only the loopback port), but with the host's network, which this script uses,
# nginx would answer anyone who reaches this machine. See the page for the proxy's limits.
#
# Settings (environment variables, defaults in brackets):
#   PORT [5070]   WORKERS [1]   MODEL_NAME [breast-cancer-classifier]   ALIAS [champion]
#   VERSION [unset]: run this version's image instead of the alias's.
#   ANSWER [labels]: `probabilities` runs <name>:v<N>-probabilities (build_image.sh builds it
#     with the same setting): a list per row, each class's probability.
#   MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT [60]: seconds a prediction may take before the
#     server gives up on it (HTTP 504); passed into the container.
#   MLFLOW_TRACKING_URI [sqlite:///<repository>/mlflow.db]: the registry that names the version.
#   DOCKER_HOST [Docker's default]: the Docker daemon to run it on.
set -euo pipefail

# The shared steps (finding mlflow, the store, checking the version, Docker): tutorial_shell.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../tutorial_shell.sh"
no_flags "e.g. PORT=6000 ./container/run_image.sh" "$@"

repo="$tutorial_repo"
PORT="${PORT:-5070}"
WORKERS="${WORKERS:-1}"
MODEL_NAME="${MODEL_NAME:-breast-cancer-classifier}"
ALIAS="${ALIAS:-champion}"
VERSION="${VERSION:-}"
ANSWER="${ANSWER:-labels}"
TIMEOUT="${MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT:-60}"
check_answer
use_mlflow
use_store

# The version the alias points at now (or VERSION), checked as build_image.sh checked it.
VERSION="$(checked_version "$MODEL_NAME" "$ALIAS" "$VERSION")"
image="$MODEL_NAME:v$VERSION"
[ "$ANSWER" = labels ] || image="$image-probabilities"

need_docker
if ! docker image inspect "$image" >/dev/null 2>&1; then
    settings="VERSION=$VERSION"
    [ "$ANSWER" = labels ] || settings="$settings ANSWER=$ANSWER"
    echo "error: no image $image; build it first: $settings ./container/build_image.sh" >&2
    exit 1
fi
# With the host's network the container's server binds this machine's port: a busy one would
# end in uvicorn's traceback inside the container; say it in one line instead.
port_free 127.0.0.1 "$PORT"

echo "Serving $image (models:/$MODEL_NAME/$VERSION) in a container on http://127.0.0.1:$PORT"
echo "Try it from another terminal: python predict.py --url http://127.0.0.1:$PORT"
echo

# --network host: the container uses this machine's network, and --host 127.0.0.1 keeps the
# server on its loopback. --user nobody: the image's default user is root, and serving needs
# no more than reading /opt/ml/model. --init: Docker's tiny init passes Ctrl-C on and reaps.
exec docker run --rm --init --name "$MODEL_NAME-v$VERSION-$PORT" --network host --user nobody \
    --env MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT="$TIMEOUT" \
    --entrypoint mlflow "$image" \
    models serve --model-uri /opt/ml/model --env-manager local \
    --host 127.0.0.1 --port "$PORT" --workers "$WORKERS"
