#!/usr/bin/env bash
# Start a tracking server that a whole team can log to: runs in a database, artifacts proxied.
#
# What you learn here: with `mlflow server` between the scripts and the storage, a client needs
# one setting, MLFLOW_TRACKING_URI=http://<server>:<port>, and no database password or bucket
# credentials. The server writes runs, metrics and registered models to the database named by
# BACKEND_STORE_URI (SQLite for a try-out, PostgreSQL for a team) and streams every artifact
# (models, figures) to ARTIFACTS_DESTINATION (a folder here, s3://bucket/prefix for a team).
#
#   ./team-server/tracking_server.sh                                # http://127.0.0.1:5050
#   export MLFLOW_TRACKING_URI=http://127.0.0.1:5050                # then, in another terminal:
#   python train_rfc.py && python register_model.py && python predict.py
#
#   export PGPASSWORD=...      # not in the URL: the URL is on the command line, visible in `ps`
#   BACKEND_STORE_URI=postgresql+psycopg://mlflow@db.internal:5432/mlflow \
#   ARTIFACTS_DESTINATION=s3://ml-team-artifacts/mlflow ./team-server/tracking_server.sh
#
# Settings (environment variables, defaults in brackets):
#   BACKEND_STORE_URI [sqlite:///<repository>/server/mlflow.db]: any SQLAlchemy URL MLflow
#     supports. PostgreSQL needs the driver: pip install -r requirements/team.txt. A SQLite
#     file you name must exist (a typo, or a variable from another terminal, would otherwise
#     start an empty store); the start-up lines count what a SQLite store holds.
#   ARTIFACTS_DESTINATION [<repository>/server/artifacts]: a folder, or any artifact URI MLflow
#     supports (s3://, gs://, wasbs://, ...), used unchanged.
#   PORT [5050]: 5000 is left to `make ui`.
#   WORKERS [1]: uvicorn worker processes. One starts in seconds and serves a small team (it
#     answers requests on several threads); raise it for many clients logging at once.
#   HOST [127.0.0.1]: only this machine can connect. The server has NO authentication: read
#     team-server/exposing.md before you change it.
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION [false]: true also starts MLflow's background job
#     workers (about eight processes), which only GenAI features use (LLM judges, trace archival).
# Any further arguments go to `mlflow server` unchanged. With --app-name basic-auth (accounts,
# team-server/exposing.md), the admin's password and the session key come from the environment,
# else from team-server/basic-auth.env, which the first such start writes (random, yours only),
# so that every terminal can read them: source team-server/basic-auth.env
#
# Each request the server answers is one access-log line on stdout, e.g.
#   INFO:     127.0.0.1:53422 - "POST /api/2.0/mlflow/runs/log-batch HTTP/1.1" 200
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/../tutorial_shell.sh"
repo="$tutorial_repo"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-5050}"
WORKERS="${WORKERS:-1}"
BACKEND_STORE_URI="${BACKEND_STORE_URI:-sqlite:///$repo/server/mlflow.db}"
ARTIFACTS_DESTINATION="${ARTIFACTS_DESTINATION:-$repo/server/artifacts}"
# Classic ML tracking needs no job workers: leave them off unless asked for.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
# The server stores and streams models as files and never needs to load one, so MLflow's
# model loaders may not deserialize anything in it (MLflow's default, true, would let them).
export MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false

# The active environment's mlflow, else .venv's; $python beside it (tutorial_shell.sh).
use_mlflow

# `./team-server/tracking_server.sh --help` is MLflow's own help for every option this script passes on.
case "${1:-}" in -h | --help) exec mlflow server --help ;; esac

# A busy port would end in uvicorn's "[Errno 98]" line after "startup complete"; say it first.
port_free "$HOST" "$PORT"

# A SQLite store: one you named must exist; the default one is made on the first start. Either
# way, say what it holds, so that a server on the wrong (empty) store shows it in its first lines.
store_note=""
if [[ "$BACKEND_STORE_URI" == sqlite:///* ]]; then
    db="${BACKEND_STORE_URI#sqlite:///}"
    if [ -f "$db" ]; then
        store_note=" ($("$python" -c '
import sqlite3, sys
with sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True) as db:
    runs = db.execute("select count(*) from runs").fetchone()[0]
    models = db.execute("select count(*) from registered_models").fetchone()[0]
plural = ["", "s"]
print(f"{runs} run{plural[runs != 1]}, {models} registered model{plural[models != 1]}")
' "$db" 2>/dev/null || echo "not an MLflow store yet"))"
    elif [ "$db" = "$repo/server/mlflow.db" ]; then
        mkdir -p "$repo/server"
        store_note=" (new and empty: this is the first start)"
    else
        echo "error: no store at $db (BACKEND_STORE_URI): is the path right, and set in this terminal? To start an empty store there, create the file first: touch $db" >&2
        exit 1
    fi
fi

# Accounts need the admin's password and a key that signs the login sessions: from the
# environment, else from one file that every terminal can read, written on the first start.
if [[ " $* " == *" basic-auth "* ]]; then
    settings="$repo/team-server/basic-auth.env"
    if [ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ] && [ ! -f "$settings" ]; then
        (
            umask 077
            cat >"$settings" <<SETTINGS
# Written by tracking_server.sh --app-name basic-auth: the admin's password and the session key.
# Yours only (mode 600), git-ignored. In a terminal that needs them: source team-server/basic-auth.env
export MLFLOW_AUTH_ADMIN_PASSWORD=$("$python" -c "import secrets; print(secrets.token_urlsafe(18))")
export MLFLOW_FLASK_SERVER_SECRET_KEY=$("$python" -c "import secrets; print(secrets.token_hex(32))")
SETTINGS
        )
        echo "Wrote team-server/basic-auth.env: the admin's password (user admin) and the session key"
    fi
    if [ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]; then
        # shellcheck source=/dev/null
        source "$settings"
    fi
    export MLFLOW_AUTH_CONFIG_PATH="${MLFLOW_AUTH_CONFIG_PATH:-$repo/team-server/basic_auth.ini}"
    if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
        echo "error: MLFLOW_AUTH_ADMIN_PASSWORD is set but MLFLOW_FLASK_SERVER_SECRET_KEY is not: set both, or neither (then team-server/basic-auth.env has them)" >&2
        exit 1
    fi
fi

# Say where things go, without the database password a URL may carry.
echo "MLflow tracking server on http://$HOST:$PORT"
echo "  runs and models: $(sed -E 's#//([^:/@]+):[^@]*@#//\1:***@#' <<<"$BACKEND_STORE_URI")$store_note"
echo "  artifacts:       $ARTIFACTS_DESTINATION"
echo "  models:          stored and served as files, never loaded (MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false)"
echo "Point the scripts at it:  export MLFLOW_TRACKING_URI=http://$HOST:$PORT"
echo

# Ctrl-C reaches every process of the terminal's job, and `mlflow server` (3.17) also passes
# it on to its uvicorn child: two signals, and uvicorn's forced exit on the second cancels the
# app's lifespan task with a CancelledError traceback. That task only cleans up after the MLflow
# Assistant's sandbox, which this server does not run; without it Ctrl-C stops the server quietly.
lifespan=(--uvicorn-opts "--lifespan off")
[[ " $* " == *" --uvicorn-opts"* ]] && lifespan=()  # yours replace it

# --artifacts-destination turns on proxied artifacts: new experiments store their artifacts
# under mlflow-artifacts:/, which clients upload to and download from through this server.
# The first start against an empty database creates MLflow's tables (a few seconds).
exec mlflow server \
    --backend-store-uri "$BACKEND_STORE_URI" \
    --artifacts-destination "$ARTIFACTS_DESTINATION" \
    --host "$HOST" --port "$PORT" --workers "$WORKERS" \
    "${lifespan[@]}" "$@"
