"""Part 3, registering a model: the gate's share of a promotion, and the store's size."""

import mlflow
from harness import MODEL_NAME, REPO, Bench, py, secs, seeded_copy


def measure(bench: Bench):
    trained, commands = bench.store("trained"), {}
    mlflow.set_tracking_uri(f"sqlite:///{trained}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    below = min(r.data.metrics["test_f1"] for r in runs) - 0.005
    if not bench.s.quick:
        champion = bench.store("champion")
        client = mlflow.MlflowClient(f"sqlite:///{champion}")
        champion_id = client.get_model_version_by_alias(MODEL_NAME, "champion").run_id
        other = next(r.info.run_name for r in runs if r.info.run_id != champion_id)
        commands = {
            "`--version 1`: move the alias, no gate": (champion, "--version 1"),
            "first champion: the gate evaluates 1 model": (trained, ""),
            f"`--force` {other}: 2 models": (champion, f"--force --run-name {other}"),
        }
    for size in bench.s.store_sizes:
        seeded = seeded_copy(trained, bench.work / f"seeded-{size}.db", size - len(runs), below)
        commands[f"first champion, {size:,} runs in the store"] = (seeded, "")
    target, rows = bench.work / "register.db", []
    for name, (store, flags) in commands.items():
        command, fresh = f"{py(REPO / 'register_model.py')} {flags}", f"cp {store} {target}"
        timed = bench.hyperfine(command, bench.env(f"sqlite:///{target}"), warmup=0, prepare=fresh)
        rows.append(f"{name} | {secs(timed)}")
    return (
        "3. Registering a model",
        "`register_model.py` on a fresh copy of a store each run (no warm-up): rank the models "
        "by test_f1, evaluate on the 114 held-back rows, register, move the alias. The stores "
        "hold the two trained runs, and the larger ones seeded runs with a model each.",
        "register_model.py | wall time",
        rows,
        "the gate is most of a promotion's time (loading each model, and MLflow drawing its "
        "evaluation plots), and a rollback skips it. The number of runs hardly matters: "
        "ranking is one indexed query that returns the top few.",
    )
