#!/usr/bin/env bash
# `make test-pythons`: the tutorial end to end under every Python version the README claims,
# each in a fresh clone inside a folder whose name has a space ("My Projects").
#
# For each version it finds (python3.X on the PATH, else pyenv's install of it, else
# `uv python find`): a fresh clone, a new virtual environment, the pins installed, then
#   3.11:      `make demo` (uv; trains six runs, promotes through the gate, serves one
#              request), then `make ui` and `./tracking_server.sh`, each started and stopped;
#   3.12:      the scripts by hand (uv): train both, register, predict in-process and through
#              `./serve_model.sh`;
#   3.13:      the same, installed with plain pip instead of uv, so that both ways are tested.
# It prints one line per version (passed, FAILED, or not found) and its time, and exits
# non-zero if a version it found failed. Logs: $WORK/<version>.log.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSIONS="${VERSIONS:-3.11 3.12 3.13}"
WORK="$(mktemp -d)/My Projects"
mkdir -p "$WORK"
# uv from this checkout's environment (make installs it), else one on the PATH.
uv="$(command -v uv || true)"
[ -x "$repo/.venv/bin/uv" ] && uv="$repo/.venv/bin/uv"
[ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/uv" ] && uv="$VIRTUAL_ENV/bin/uv"
export MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
unset MLFLOW_TRACKING_URI VIRTUAL_ENV

find_python() {
    local version="$1" found
    found="$(command -v "python$version" 2>/dev/null)" && "$found" -c "" 2>/dev/null && {
        echo "$found"
        return
    }
    # pyenv's shims answer only for the versions selected; its installs are all here.
    if command -v pyenv >/dev/null; then
        for found in "$(pyenv root)"/versions/"$version".*/bin/python"$version"; do
            [ -x "$found" ] && echo "$found" && return
        done
    fi
    [ -n "$uv" ] && "$uv" python find "$version" 2>/dev/null
}

free_port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }

# Start a server in its own process group, wait for its line, stop the whole group.
start_and_stop() {
    local wait_for="$1"
    shift
    setsid "$@" > server.log 2>&1 &
    local pid=$! second
    for second in $(seq 90); do
        grep -q "$wait_for" server.log && break
        kill -0 $pid 2>/dev/null || break
        sleep 1
    done
    grep -q "$wait_for" server.log
    local found=$?
    kill -- -$pid 2>/dev/null
    wait $pid 2>/dev/null || true
    [ $found -eq 0 ] || { cat server.log; return 1; }
}

by_hand() {
    local installer="$1" python="$2"
    "$python" -m venv .venv || return 1
    if [ "$installer" = uv ]; then
        "$uv" pip install --quiet --compile-bytecode --python .venv/bin/python -r requirements.txt || return 1
        "$uv" pip install --quiet --python .venv/bin/python --no-deps -e . || return 1
    else
        .venv/bin/python -m pip install --quiet -r requirements.txt || return 1
        .venv/bin/python -m pip install --quiet --no-deps -e . || return 1
    fi
    source .venv/bin/activate
    python train_rfc.py --n-estimators 20 &&
        python train_ann.py --hidden-layers 16 --learning-rate 0.01 &&
        python register_model.py &&
        python predict.py || return 1
    local port
    port="$(free_port)"
    PORT=$port setsid ./serve_model.sh > serve.log 2>&1 &
    local pid=$! ok=1 second
    for second in $(seq 90); do
        python predict.py --url "http://127.0.0.1:$port" 2>/dev/null && ok=0 && break
        kill -0 $pid 2>/dev/null || break
        sleep 1
    done
    kill -- -$pid 2>/dev/null
    wait $pid 2>/dev/null || true
    [ $ok -eq 0 ] || cat serve.log
    return $ok
}

with_make() {
    make demo SERVE_PORT="$(free_port)" PYTHON="$1" || return 1
    start_and_stop "Uvicorn running" make ui UI_PORT="$(free_port)" || return 1
    PORT="$(free_port)" start_and_stop "Uvicorn running" ./team-server/tracking_server.sh
}

# One version, in a fresh clone; its result line goes to $WORK/<version>.result.
try_version() {
    local version="$1" python clone log started how result took
    python="$(find_python "$version")"
    if [ -z "$python" ]; then
        echo "Python $version: not found (no python$version on the PATH, in pyenv or from uv)" \
            > "$WORK/$version.result"
        return
    fi
    clone="$WORK/py$version"
    log="$WORK/$version.log"
    started=$SECONDS
    case "$version" in
        3.11) how="make demo, make ui, tracking_server.sh (uv)" ;;
        3.13) how="scripts by hand, serve_model.sh (pip)" ;;
        *) how="scripts by hand, serve_model.sh (uv)" ;;
    esac
    (
        set -e
        git clone --quiet "$repo" "$clone"
        # What the tests run on: the working tree as it is now, commits or not.
        (cd "$repo" && git ls-files -z) | (cd "$repo" && xargs -0 tar cf -) | (cd "$clone" && tar xf -)
        cd "$clone"
        case "$version" in
            3.11) with_make "$python" ;;
            3.13) by_hand pip "$python" ;;
            *) by_hand uv "$python" ;;
        esac
    ) > "$log" 2>&1
    result=$?
    took=$((SECONDS - started))
    if [ $result -eq 0 ]; then
        echo "Python $version ($("$python" -V 2>&1 | cut -d' ' -f2)): passed in ${took} s: $how"
    else
        echo "Python $version: FAILED after ${took} s: $how (log: $log)"
    fi > "$WORK/$version.result"
}

# The versions side by side: most of the time goes to installing and starting processes.
for version in $VERSIONS; do
    try_version "$version" &
done
wait
failed=0
for version in $VERSIONS; do
    cat "$WORK/$version.result"
    grep -q FAILED "$WORK/$version.result" && failed=1
done
echo "(all versions in $((SECONDS)) s)"
exit $failed
