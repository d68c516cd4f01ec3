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
#
# Why not the image's default command: it starts nginx on port 8080 of every network interface,
# in front of uvicorn on 8000. Published with `docker run -p 127.0.0.1:5070:8080` that is fine
# (Docker forwards only the loopback port), but with the host's network, which this script uses,
# nginx would answer anyone who reaches this machine. See the page for the proxy's limits.
#
# Settings (environment variables, defaults in brackets):
#   PORT [5070]   WORKERS [1]   MODEL_NAME [breast-cancer-classifier]   ALIAS [champion]
#   VERSION [unset]: run this version's image instead of the alias's.
#   MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT [60]: seconds a prediction may take before the
#     server gives up on it (HTTP 504); passed into the container.
#   MLFLOW_TRACKING_URI [sqlite:///<repository>/mlflow.db]: the registry that names the version.
#   DOCKER_HOST [Docker's default]: the Docker daemon to run it on.
set -euo pipefail

case "${1:-}" in
    "") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit ;;
    *)
        echo "error: run_image.sh takes no flags (got $1); settings are environment variables," \
            "e.g. PORT=6000 ./container/run_image.sh (see --help)" >&2
        exit 2
        ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PORT:-5070}"
WORKERS="${WORKERS:-1}"
MODEL_NAME="${MODEL_NAME:-breast-cancer-classifier}"
ALIAS="${ALIAS:-champion}"
VERSION="${VERSION:-}"
TIMEOUT="${MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT:-60}"
if ! command -v mlflow >/dev/null; then
    echo "error: mlflow not found; activate the virtual environment (source .venv/bin/activate)" >&2
    exit 1
fi
python="$(dirname "$(command -v mlflow)")/python"
# The store (tutorial_store.py): mlflow.db at the repository root, unless MLFLOW_TRACKING_URI
# names another; without one, a line saying what to run first.
store="$("$python" "$repo/tutorial_store.py" store)" || exit 1
export MLFLOW_TRACKING_URI="$store"

# The version the alias points at now (or VERSION), checked as build_image.sh checked it.
if ! VERSION="$("$python" "$repo/tutorial_store.py" version \
    --model-name "$MODEL_NAME" --alias "$ALIAS" --version "$VERSION")"; then
    exit 1
fi
image="$MODEL_NAME:v$VERSION"

if ! command -v docker >/dev/null; then
    echo "error: docker not found; install Docker (https://docs.docker.com/engine/install/)" >&2
    exit 1
fi
if ! why="$(docker info --format '{{.ServerVersion}}' 2>&1)"; then
    echo "error: no Docker daemon answers ($(echo "$why" | grep -v '^$' | tail -n 1));" \
        "start Docker, or point DOCKER_HOST at one" >&2
    exit 1
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "error: no image $image; build it first: VERSION=$VERSION ./container/build_image.sh" >&2
    exit 1
fi
# With the host's network the container's server binds this machine's port: a busy one would
# end in uvicorn's traceback inside the container; say it in one line instead.
if ! "$python" "$repo/tutorial_store.py" port-free 127.0.0.1 "$PORT"; then
    echo "error: port $PORT on 127.0.0.1 is in use (another server?); choose one with PORT=..." >&2
    exit 1
fi

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
