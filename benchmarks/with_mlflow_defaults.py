"""Run a training script unchanged, but with MLflow's defaults where the tutorial chose otherwise.

The tutorial makes two explicit choices in each training script:

- `pip_requirements=[...]` in `log_model` (MLflow's default infers them by loading the model in
  a subprocess and watching which packages it imports), and
- batched `log_params` / `log_metrics` / `set_tags` (the default habit is one `log_param` /
  `log_metric` / `set_tag` per key, and against a tracking server each is one HTTP request).

This wrapper undoes one or both choices around the real MLflow functions, then runs the script
as `python SCRIPT` would, so the benchmark compares the very same lesson code:

    python benchmarks/with_mlflow_defaults.py --undo requirements train_rfc.py
    python benchmarks/with_mlflow_defaults.py --undo calls train_rfc.py
    python benchmarks/with_mlflow_defaults.py --undo requirements --undo calls train_rfc.py
"""

import argparse
import functools
import runpy
import sys
from pathlib import Path

import mlflow
import mlflow.sklearn

REPO = Path(__file__).resolve().parents[1]


def infer_requirements():
    """log_model without pip_requirements: MLflow infers them."""
    log_model = mlflow.sklearn.log_model

    @functools.wraps(log_model)
    def log_model_with_inferred_requirements(*args, **kwargs):
        kwargs.pop("pip_requirements", None)
        return log_model(*args, **kwargs)

    mlflow.sklearn.log_model = log_model_with_inferred_requirements


def one_call_per_key():
    """log_params / log_metrics / set_tags as one call per key."""

    def log_params(params, **_):
        for key, value in params.items():
            mlflow.log_param(key, value)

    def log_metrics(metrics, **_):
        for key, value in metrics.items():
            mlflow.log_metric(key, value)

    def set_tags(tags, **_):
        for key, value in tags.items():
            mlflow.set_tag(key, value)

    mlflow.log_params, mlflow.log_metrics, mlflow.set_tags = log_params, log_metrics, set_tags


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--undo", action="append", choices=["requirements", "calls"], default=[])
    parser.add_argument("script", help="train_rfc.py or train_ann.py")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="the script's own flags")
    args = parser.parse_args()
    if "requirements" in args.undo:
        infer_requirements()
    if "calls" in args.undo:
        one_call_per_key()
    sys.path.insert(0, str(REPO))
    sys.argv = [args.script, *args.flags]
    runpy.run_path(str(REPO / args.script), run_name="__main__")


if __name__ == "__main__":
    main()
