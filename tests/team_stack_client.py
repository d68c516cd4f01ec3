"""One team member logging runs as fast as it can, for the team stack's census (and benchmark).

    python tests/team_stack_client.py EXPERIMENT_ID CLIENT RUNS OUTPUT.json [STOP_FILE]

With STOP_FILE, RUNS is the least it logs: it goes on until that file exists, so that a test can
keep the load on for as long as a fault and its repair take.

Each run: 5 params, a `loss` metric at 5 steps, `accuracy`, and one small text artifact whose
content names the run, all through MLFLOW_TRACKING_URI with MLflow's own retries. OUTPUT lists
what was sent (run id, params, metrics, artifact text), so that a census can compare the store
with it. Public MLflow APIs only; standard library and mlflow.
"""

import itertools
import json
import sys
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param


def main() -> None:
    experiment_id, client_name, runs, output, *stop_file = sys.argv[1:]
    client, sent, started = mlflow.MlflowClient(), [], time.monotonic()

    def told_to_go_on() -> bool:
        return bool(stop_file) and not Path(stop_file[0]).exists()

    for number in itertools.count():
        if number >= int(runs) and not told_to_go_on():
            break
        name = f"{client_name}-{number}"
        run = client.create_run(experiment_id, run_name=name, tags={"client": client_name})
        run_id = run.info.run_id
        params = {f"p{n}": f"{name}-{n}" for n in range(5)}
        now = int(time.time() * 1000)
        losses = [round(1 / (step + 1 + number), 6) for step in range(5)]
        metrics = [Metric("loss", loss, now, step) for step, loss in enumerate(losses)]
        metrics.append(Metric("accuracy", 0.5 + number / 1000, now, 0))
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()], metrics=metrics)
        text = f"run {name} of client {client_name}\n"
        client.log_text(run_id, text, "notes/run.txt")
        client.set_terminated(run_id)
        sent.append({"run_id": run_id, "name": name, "params": params, "losses": losses, "text": text})  # fmt: skip
    seconds = time.monotonic() - started
    with open(output, "w") as out:
        json.dump({"runs": sent, "seconds": seconds}, out)


if __name__ == "__main__":
    main()
