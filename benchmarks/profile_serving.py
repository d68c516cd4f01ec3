"""Where a served prediction spends its time: the scoring server's handler, profiled in-process.

`mlflow models serve` answers POST /invocations by running `scoring_server.invocations()` in a
thread: parse the JSON into a DataFrame, check it against the signature, call the model's
predict, write the JSON answer. This times that function against `pyfunc` predict and the bare
scikit-learn model on the same rows, then profiles it with pyinstrument (a thread pool hides
the handler from a whole-server profile).

    python benchmarks/profile_serving.py                  # champion of the tutorial's store
    python benchmarks/profile_serving.py --rows 100 --calls 300
"""

import argparse
import json
import os
import statistics
import timeit
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import scoring_server
from pyinstrument import Profiler

REPO = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default="models:/breast-cancer-classifier@champion")
    parser.add_argument("--rows", type=int, default=1, help="rows per request (default: 1)")
    parser.add_argument("--calls", type=int, default=300, help="calls timed (default: 300)")
    args = parser.parse_args()
    if "MLFLOW_TRACKING_URI" not in os.environ:
        mlflow.set_tracking_uri(f"sqlite:///{REPO / 'mlflow.db'}")

    local_path = mlflow.artifacts.download_artifacts(args.model_uri)
    model = scoring_server.load_model_with_mlflow_config(local_path)
    schema = model.metadata.get_input_schema()
    X = pd.read_csv(REPO / "data" / "breast_cancer.csv").drop(columns="diagnosis").astype(float)
    frame = X.head(args.rows)
    body = json.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)}).encode()
    sklearn_model = model.get_raw_model()

    candidates = {
        "scoring_server.invocations (what the server runs)": lambda: scoring_server.invocations(
            body, "application/json", model, schema
        ),
        "pyfunc predict (signature check + model)": lambda: model.predict(frame),
        "scikit-learn predict (model only)": lambda: sklearn_model.predict(frame),
    }
    for name, call in candidates.items():
        call()  # warm up
        times = [t * 1000 for t in timeit.repeat(call, number=1, repeat=args.calls)]
        print(f"{name:<52} p50 {statistics.median(times):6.2f} ms")

    profiler = Profiler(interval=0.0002)
    with profiler:
        for _ in range(args.calls):
            candidates["scoring_server.invocations (what the server runs)"]()
    # Library frames are the point here: show them, down to 3% of the time.
    options = {"filter_threshold": 0.03}
    print(profiler.output_text(unicode=False, show_all=True, processor_options=options))


if __name__ == "__main__":
    main()
