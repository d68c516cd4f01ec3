"""Which version was the champion, and when: the promotion gate's decision runs, in order.

What you learn here: the registry knows only where an alias points *now*. The history is in
the runs register_model.py logs, one per decision, in the experiment
`breast-cancer-promotion`: when (the run's start), who (the run's user), the verdict
(promoted, forced, refused, or rolled back with --version), the version the alias moved to and
the reason, all as tags. A
search over that experiment, oldest first, is the audit trail; the registry adds where the
alias points now, and the run each version came from.

    python rollout/champion_history.py                          # every decision, then the champion now
    python rollout/champion_history.py --at "2026-12-01 14:00"  # what was the champion then? (UTC)

A roll back (`register_model.py --version N --reason "..."`) skips the gate but logs its
decision run too. An alias moved by other means (the UI, the API) has none: the history says
so when the alias points somewhere the last decision did not leave it.
"""

import argparse
from datetime import UTC, datetime
from pathlib import Path

import mlflow

import server_errors
import tutorial_store

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = tutorial_store.MODEL_NAME
PROMOTION_EXPERIMENT = "breast-cancer-promotion"


def decisions(model_name):
    """The gate's decision runs, oldest first (the evaluations are their children: left out)."""
    experiment = mlflow.get_experiment_by_name(PROMOTION_EXPERIMENT)
    if experiment is None:
        return []
    return mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string="tags.verdict != ''",  # only decision runs carry a verdict
        order_by=["attributes.start_time ASC"],
        output_format="list",
    )


def when(milliseconds):
    return datetime.fromtimestamp(milliseconds / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def main(argv=None):
    args = parse_args(argv)
    tutorial_store.use_store(REPO)  # mlflow.db at the repository root, or MLFLOW_TRACKING_URI's
    runs = decisions(args.model_name)
    if not runs:
        raise SystemExit(
            f"error: no decision runs in {PROMOTION_EXPERIMENT!r} ({mlflow.get_tracking_uri()}); "
            "promote first: python register_model.py"
        )

    print(f"The gate's decisions for {args.model_name}@{args.alias}, oldest first (UTC):")
    moved_to = None  # the version the last decision left the alias on
    for run in runs:
        tags = run.data.tags
        verdict = "forced" if tags.get("forced") == "true" else tags["verdict"]
        version = tags.get("version")
        if verdict != "refused" and version:
            moved_to = version
        target = f"version {version}" if verdict != "refused" and version else "stays"
        print(
            f"  {when(run.info.start_time)}  {verdict:<8} {target:<10} by {run.info.user_id}: "
            f"{tags.get('challenger')} vs {tags.get('champion')}; {tags.get('reason')}"
        )

    now = tutorial_store.version_of(args.model_name, args.alias)
    if now is None:
        raise SystemExit(f"error: {args.model_name} has no alias {args.alias!r}")
    source = now.tags.get("source_run_name", "?")
    print(
        f"Now: {args.alias} -> version {now.version} (run {source!r}, registered "
        f"{when(now.creation_timestamp)})"
    )
    if str(now.version) != str(moved_to):
        print(
            f"  Version {now.version} was set outside register_model.py (the UI or the API), after "
            "the last decision: no decision run records when or by whom."
        )

    if args.at:
        try:
            at = datetime.fromisoformat(args.at).replace(tzinfo=UTC).timestamp() * 1000
        except ValueError:
            raise SystemExit(
                f"error: --at {args.at!r} is not a time like '2026-12-01 14:00'"
            ) from None
        before = [
            r
            for r in runs
            if r.info.start_time <= at and r.data.tags["verdict"] != "refused"
            and r.data.tags.get("version")
        ]  # fmt: skip
        if not before:
            print(f"At {args.at}: no champion yet.")
        else:
            last = before[-1]
            print(
                f"At {args.at}: version {last.data.tags['version']}, promoted "
                f"{when(last.info.start_time)} ({last.data.tags['challenger']}), unless rolled "
                "back since"
            )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Print the champion's history: every decision of the promotion gate, "
        "oldest first, and where the alias points now.",
    )
    parser.add_argument(
        "--model-name", default=MODEL_NAME, help="registered model (default: %(default)s)"
    )
    parser.add_argument("--alias", default="champion", help="alias (default: %(default)s)")
    parser.add_argument(
        "--at",
        metavar="'YYYY-MM-DD HH:MM'",
        help="also say which version the gate had made champion at this time (UTC)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    server_errors.exit_on_error(main)
