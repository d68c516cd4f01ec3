#!/usr/bin/env bash
# Build a container image of the champion: MLflow writes the Dockerfile, Docker builds it.
#
# What you learn here: an image holds one model version, for good. So the alias is resolved
# once, here, to the version it points at; that version's MLmodel is checked (check_model.py)
# before anything is copied or built; and the image is named after the version it serves,
# breast-cancer-classifier:v<N>, never after the alias, which will move on. The two lines that
# are the lesson:
#   mlflow models generate-dockerfile --model-uri models:/<name>/<version> --env-manager local
#   docker build --network host --tag <name>:v<version> <that folder>
# (`mlflow models build-docker --env-manager local` does both in one command; see the page.)
#
#   ./container/build_image.sh               # the champion -> breast-cancer-classifier:v<N>
#   VERSION=3 ./container/build_image.sh     # version 3, whatever the alias says
#   ANSWER=probabilities ./container/build_image.sh   # -> breast-cancer-classifier:v<N>-probabilities
#
# The built image must load its model before it gets its name: it is built under a temporary
# tag, and only retagged <name>:v<N> when `mlflow.pyfunc.load_model` works inside it. A build
# that fails leaves no <name>:v<N> behind. An image that already exists is not built again.
#
# Settings (environment variables, defaults in brackets):
#   MODEL_NAME [breast-cancer-classifier]   ALIAS [champion]
#   VERSION [unset]: build this version number instead of the alias's.
#   ANSWER [labels]: `probabilities` builds an image that answers each class's probability: the
#     checked version saved again by `predict.py --probabilities-model` (MLflow's
#     pyfunc_predict_fn="predict_proba", checked again), tagged <name>:v<N>-probabilities.
#   BUILD_NETWORK [host]: the network the Dockerfile's RUN steps use to reach apt and PyPI. The
#     host's own works wherever this machine reaches them; `default` is Docker's bridge.
#   BUILD_FOLDER [<repository>/container/build]: where the Dockerfile, the model files it copies
#     and the build's log stay, in <name>-v<N>/, to read (git-ignored).
#   MLFLOW_TRACKING_URI [sqlite:///<repository>/mlflow.db]: the store the model is read from.
#   DOCKER_HOST [Docker's default]: the Docker daemon to build with.
set -euo pipefail

# The shared steps (finding mlflow, the store, checking the version, Docker): tutorial_shell.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../tutorial_shell.sh"
no_flags "e.g. VERSION=3 ./container/build_image.sh" "$@"

repo="$tutorial_repo"
MODEL_NAME="${MODEL_NAME:-breast-cancer-classifier}"
ALIAS="${ALIAS:-champion}"
VERSION="${VERSION:-}"
ANSWER="${ANSWER:-labels}"
BUILD_NETWORK="${BUILD_NETWORK:-host}"
BUILD_FOLDER="${BUILD_FOLDER:-$repo/container/build}"
check_answer
use_mlflow
use_store

# 1. The alias, pinned to the version it points at now (or VERSION), and that version checked:
# its MLmodel only (YAML, nothing loaded). A model check_model.py does not trust is one line
# here, and nothing is copied or built.
version="$(checked_version "$MODEL_NAME" "$ALIAS" "$VERSION")"
image="$MODEL_NAME:v$version"
model_uri="models:/$MODEL_NAME/$version"
[ "$ANSWER" = labels ] || image="$image-probabilities"
building="$MODEL_NAME:building-v$version"  # the temporary tag, until the image passes its check

# 2. A Docker daemon that answers. `docker info` fails within seconds when there is none.
need_docker
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image already exists: version $version is built (docker rmi $image to build it again)"
    exit 0
fi

# 3. MLflow writes the Dockerfile and copies the model files beside it. --env-manager local:
# the image's own Python runs the model, FROM python:<the model's Python>-slim. (MLflow's
# default, virtualenv, starts FROM ubuntu and compiles that Python with pyenv instead.)
folder="$BUILD_FOLDER/$MODEL_NAME-v$version"
[ "$ANSWER" = labels ] || folder="$folder-probabilities"
rm -rf "$folder"
mkdir -p "$folder"
log="$folder/build.log"
started=$SECONDS
if [ "$ANSWER" = probabilities ]; then
    # The same checked version, saved again to answer predict_proba; checked again once saved.
    model_uri="$folder/probabilities-model"
    probabilities_copy "$MODEL_NAME" "$version" "$model_uri"
fi
echo "Building $image from models:/$MODEL_NAME/$version (checked); log in ${folder#"$PWD/"}/build.log"
if ! mlflow models generate-dockerfile --model-uri "$model_uri" \
    --env-manager local --output-directory "$folder" >"$log" 2>&1; then
    echo "error: mlflow models generate-dockerfile failed: $(grep -v '^$' "$log" | tail -n 1)" >&2
    exit 1
fi

# 4. The build, under the temporary tag. Its RUN steps download nginx (apt) and MLflow and the
# model's requirements (pip). Docker tags nothing when a build fails; --force-rm also removes
# the containers of the steps that failed.
if ! docker build --network "$BUILD_NETWORK" --force-rm --tag "$building" \
    --label "org.mlflow.model-uri=models:/$MODEL_NAME/$version" "$folder" >>"$log" 2>&1; then
    docker rmi "$building" >/dev/null 2>&1 || true
    # apt's and pip's own last error says more than Docker's "returned a non-zero code".
    why="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(E|ERROR): ' | grep -v 'failed to solve' | tail -n 1 || true)"
    echo "error: docker build of $image failed: ${why:-$(grep -v '^$' "$log" | tail -n 1)} (see $log)" >&2
    exit 1
fi

# 5. The image loads its own model, offline (--network none), before it gets its name.
if ! docker run --rm --network none --entrypoint python "$building" \
    -c "import mlflow; mlflow.pyfunc.load_model('/opt/ml/model')" >>"$log" 2>&1; then
    docker rmi "$building" >/dev/null 2>&1 || true
    echo "error: the image built for $image cannot load its model: $(grep -v '^$' "$log" | tail -n 1)" >&2
    exit 1
fi
docker tag "$building" "$image"
docker rmi "$building" >/dev/null
size="$(docker image inspect "$image" --format '{{.Size}}')"
echo "Built $image in $((SECONDS - started)) s: $((size / 1000000)) MB"
echo "Run it: ./container/run_image.sh"
