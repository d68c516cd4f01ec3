"""Compare two MLflow stores through MLflow's public API: is everything still there?

What you learn here: after moving a store (an old `./mlruns` folder migrated into SQLite with
`mlflow migrate-filestore`, or a database upgraded with `mlflow db upgrade`), "it finished
without an error" is not the same as "nothing was lost". This script reads both stores the way
any MLflow client does (MlflowClient: experiments, runs, metric histories, artifact listings,
the Model Registry) and prints what differs, value by value.

    python old-stores/compare_stores.py old-project/mlruns sqlite:///old.db  # a folder, a database
    python old-stores/compare_stores.py --save before.json sqlite:///mlflow.db  # a snapshot
    python old-stores/compare_stores.py before.json sqlite:///mlflow.db   # after an upgrade

A store is a tracking URI (sqlite:///..., postgresql+psycopg://..., http://...), an old
`mlruns` folder (read with MLflow's documented opt-out, MLFLOW_ALLOW_FILE_STORE=true, and only
read), or a snapshot saved by --save. A snapshot can be taken with any MLflow from 2.x on, so
the old MLflow can describe its own store before an upgrade. The verdict is the last line, where
you look (`<n> items compared: <m> differ ...`), after each difference; the exit code says it
too, for scripts: 0, no difference beyond those named with --expect; 1, differences.
"""

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType

# Settings: how much of a big store to read in one request (every run is read).
PAGE = 1000
# The fields compared besides params, tags, metrics, artifacts and aliases: MLflow's own names.
EXPERIMENT_FIELDS = [
    "experiment_id",
    "lifecycle_stage",
    "artifact_location",
    "creation_time",
    "last_update_time",
]
RUN_FIELDS = [
    "run_name",
    "status",
    "lifecycle_stage",
    "start_time",
    "end_time",
    "artifact_uri",
    "user_id",
]
MODEL_FIELDS = ["description", "creation_timestamp", "last_updated_timestamp"]
VERSION_FIELDS = [
    "source",
    "run_id",
    "run_link",
    "status",
    "description",
    "user_id",
    "creation_timestamp",
    "last_updated_timestamp",
]


def snapshot(uri: str) -> dict:
    """Everything a reader would miss, keyed by what it is, read through MlflowClient."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    items = {}
    experiments = client.search_experiments(view_type=ViewType.ALL, max_results=PAGE)
    for experiment in experiments:
        where = f"experiment {experiment.name}"
        for field in EXPERIMENT_FIELDS:
            items[f"{where}: {field}"] = empty_as_none(getattr(experiment, field, None))
        for key, value in experiment.tags.items():
            items[f"{where}: tag {key}"] = value
        runs = client.search_runs(
            [experiment.experiment_id], run_view_type=ViewType.ALL, max_results=50000
        )
        for run in runs:
            where = f"run {run.info.run_id} ({run.info.run_name})"
            items[f"{where}: experiment"] = experiment.name
            for field in RUN_FIELDS:
                items[f"{where}: {field}"] = empty_as_none(getattr(run.info, field, None))
            for key, value in run.data.params.items():
                items[f"{where}: param {key}"] = value
            for key, value in run.data.tags.items():
                items[f"{where}: tag {key}"] = value
            # Every point of every metric's history, not only the latest value.
            for key in run.data.metrics:
                history = client.get_metric_history(run.info.run_id, key)
                points = sorted((m.step, m.timestamp, m.value) for m in history)
                items[f"{where}: metric {key}"] = [list(point) for point in points]
            for path, size in list_artifacts(client, run.info.run_id):
                items[f"{where}: artifact {path}"] = size
    for model in client.search_registered_models(max_results=PAGE):
        where = f"registered model {model.name}"
        for field in MODEL_FIELDS:
            items[f"{where}: {field}"] = empty_as_none(getattr(model, field, None))
        for key, value in model.tags.items():
            items[f"{where}: tag {key}"] = value
        for alias, version in sorted(getattr(model, "aliases", {}).items()):
            items[f"{where}: alias {alias}"] = str(version)
        for version in client.search_model_versions(f"name = '{model.name}'"):
            where_version = f"{where} version {version.version}"
            for field in VERSION_FIELDS:
                items[f"{where_version}: {field}"] = empty_as_none(getattr(version, field, None))
            for key, value in version.tags.items():
                items[f"{where_version}: tag {key}"] = value
    return items


def empty_as_none(value):
    """A tracking server's REST API says '' where a database says None: the same nothing."""
    return None if value == "" else value


def list_artifacts(client, run_id, path=None):
    """(path, size) of every file under the run's artifacts, folders walked."""
    for entry in client.list_artifacts(run_id, path):
        if entry.is_dir:
            yield from list_artifacts(client, run_id, entry.path)
        else:
            yield entry.path, entry.file_size


def counts(items: dict) -> Counter:
    """What a reader counts: experiments, runs by status and lifecycle, params, tags, points..."""
    tally = Counter()
    for key, value in items.items():
        what, field = split_key(key)
        kind = field.split(" ")[0]
        if what.startswith("experiment") and kind == "lifecycle_stage":
            tally["experiments"] += 1
        elif what.startswith("run") and kind == "status":
            tally["runs"] += 1
            tally[f"runs {value}"] += 1
        elif what.startswith("run") and kind == "lifecycle_stage":
            tally[f"runs {value}"] += 1
        elif what.startswith("run") and kind in ("param", "tag", "artifact"):
            tally[f"run {kind}s"] += 1
        elif what.startswith("run") and kind == "metric":
            tally["metric histories"] += 1
            tally["metric points"] += len(value)
        elif what.startswith("registered model") and " version " in what and kind == "status":
            tally["model versions"] += 1
        elif (
            what.startswith("registered model")
            and " version " not in what
            and kind == "description"
        ):
            tally["registered models"] += 1
        elif what.startswith("registered model") and kind == "alias":
            tally["aliases"] += 1
    return tally


# The first word of every field a snapshot key can end in.
KINDS = {*EXPERIMENT_FIELDS, *RUN_FIELDS, *MODEL_FIELDS, *VERSION_FIELDS}
KINDS |= {"experiment", "param", "tag", "metric", "artifact", "alias"}


def split_key(key: str) -> tuple[str, str]:
    """'run <id> (<name>): status' -> ('run <id> (<name>)', 'status'). A name may hold ': '
    itself (the gate's decision runs are named 'promoted: ...'), so the key is split at the
    first ': ' that a known field follows."""
    start = 0
    while (at := key.find(": ", start)) != -1:
        if key[at + 2 :].split(" ")[0] in KINDS:
            return key[:at], key[at + 2 :]
        start = at + 2
    return key, ""


def read_store(store: str) -> dict:
    if store.endswith(".json"):
        return json.loads(Path(store).read_text())
    if "://" not in store:  # an old mlruns folder: MLflow 3 reads it only when told to
        if not Path(store).is_dir():
            raise SystemExit(f"error: {store} is neither a folder, a .json snapshot nor a URI")
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        store = Path(store).resolve().as_uri()
    return json.loads(json.dumps(snapshot(store)))  # as a snapshot file would hold it


def main(argv=None):
    args = parse_args(argv)
    if args.save:
        items = read_store(args.stores[0])
        Path(args.save).write_text(json.dumps(items, indent=1, sort_keys=True))
        print(
            f"Saved {len(items)} items of {args.stores[0]} to {args.save} (MLflow {mlflow.__version__})"
        )
        return
    if len(args.stores) != 2:
        raise SystemExit("error: give two stores to compare (or one with --save PATH)")
    before, after = (read_store(store) for store in args.stores)
    print(f"{'':<20} {'before':>8} {'after':>8}")
    tally_before, tally_after = counts(before), counts(after)
    for what in sorted(set(tally_before) | set(tally_after)):
        same = "" if tally_before[what] == tally_after[what] else "  <- differs"
        print(f"{what:<20} {tally_before[what]:>8} {tally_after[what]:>8}{same}")
    differences = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            differences.append(f"only before: {key} = {before[key]!r}")
        elif key not in before:
            differences.append(f"only after:  {key} = {after[key]!r}")
        elif before[key] != after[key]:
            differences.append(f"changed:     {key}: {before[key]!r} -> {after[key]!r}")
    expected = [line for line in differences if any(text in line for text in args.expect)]
    unexpected = [line for line in differences if line not in expected]
    for line in unexpected if not args.show_expected else differences:
        print(line)
    print(
        f"{len(before)} items compared: {len(differences)} differ "
        f"({len(expected)} expected with --expect, {len(unexpected)} not)"
    )
    if unexpected:
        sys.exit(1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Compare two MLflow stores (URI, old mlruns folder or .json snapshot).",
        epilog="Example: python old-stores/compare_stores.py old-project/mlruns sqlite:///old.db",
    )
    parser.add_argument("stores", nargs="+", metavar="STORE", help="before, then after")
    parser.add_argument("--save", metavar="PATH", help="save a snapshot of the one STORE given")
    parser.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="TEXT",
        help="a difference you know about (lines containing TEXT); repeat for several",
    )
    parser.add_argument(
        "--show-expected", action="store_true", help="print the expected differences too"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
