"""Retake monitoring/images/ui-drift-over-time.png from a real run of the monitoring page.

What it does, in the order the page does it, into a throw-away SQLite store in a temporary
folder: trains the default forest and promotes it, scores and checks the steady and the drifted
batch, retrains on the recalibrated rows and promotes that through the gate, then scores and
checks the drifted batch again. Then it starts `mlflow ui` on a free port of 127.0.0.1 and walks
headless Chromium to the experiment "breast-cancer-monitoring", in the chart view, with the
charts whose names hold "share": the history of the checks the page describes.

It borrows the browser and UI plumbing of tests/testbeds/ui_tour.py (the README's pictures),
so both take their pictures the same way. Run it from the repository (a minute or two):

    apt-get install chromium                          # once, as root
    .venv/bin/python -m pip install -r requirements/browser.txt -r requirements/monitoring.txt
    .venv/bin/python monitoring/capture_screenshot.py
"""

import shlex
import sys
import tempfile
from pathlib import Path

from testbeds import ui_tour as capture  # the README's pictures' browser and UI plumbing

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
IMAGE = HERE / "images" / "ui-drift-over-time.png"
EXPERIMENT = "breast-cancer-monitoring"
DRIFT_EXIT = 3


def page_commands(workdir: Path) -> list:
    """The monitoring page's commands, with absolute paths (they run from `workdir`)."""

    def data(name):
        return shlex.quote(str(REPO / "data" / name))

    def check(batch, expected):
        answers = shlex.quote(str(workdir / batch))
        command = f"monitoring/check_drift.py --data {data(batch)} --predictions {answers}"
        return (command, expected)

    def predict(batch):
        return f"predict.py --data {data(batch)} --output {shlex.quote(str(workdir / batch))}"

    return [
        "train_rfc.py",
        "register_model.py",
        predict("later_steady.csv"),
        check("later_steady.csv", 0),
        predict("later_drifted.csv"),
        check("later_drifted.csv", DRIFT_EXIT),
        f"train_rfc.py --data {data('recalibrated_train.csv')} --run-name forest-recalibrated",
        f"register_model.py --run-name forest-recalibrated --eval-data {data('recalibrated_eval.csv')}",
        predict("later_drifted.csv"),
        check("later_drifted.csv", 0),
    ]


def show_drift_history(page, base_url: str) -> None:
    """The monitoring experiment, its chart view, and the charts of the shares: one bar a check."""
    page.goto(f"{base_url}/#/experiments")
    capture.experiment_link(page, EXPERIMENT).click()
    capture.expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    # The second of the three view buttons above the runs: the chart view.
    page.locator('label:has(input[value="CHART"])').click()
    page.get_by_placeholder("Search metric charts").fill("drifted_share|malignant")
    for chart in ("drifted_share", "predicted_malignant_share"):
        capture.expect(page.get_by_text(chart, exact=True).first).to_be_visible()


def main() -> None:
    if not capture.CHROMIUM.exists():
        sys.exit(f"error: {capture.CHROMIUM} not found; install it with: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="mlflow-monitoring-") as workdir:
        workdir = Path(workdir)
        store_uri = f"sqlite:///{workdir / 'mlflow.db'}"
        env = capture.demo_env(store_uri)
        print(f"Running the monitoring page into {store_uri}")
        capture.train_demo(workdir, env, page_commands(workdir))
        with capture.running_ui(store_uri, workdir, env) as base_url:
            print(f"Capturing {base_url} into {IMAGE}")
            IMAGE.parent.mkdir(exist_ok=True)
            with capture.chromium_page(base_url) as page:
                capture.switch_to_model_training(page, base_url)
                show_drift_history(page, base_url)
                capture.save_png(page, IMAGE)


if __name__ == "__main__":
    main()
