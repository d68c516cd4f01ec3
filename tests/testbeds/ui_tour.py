"""Take the README's screenshots of MLflow's UI from a real run of the tutorial.

What it does, in the order a reader does it:

1. trains the same six runs as `make train` and registers the best one with
   `register_model.py` (then, for chapter 7's picture, runs `tune_rfc.py`, and for chapter 8's,
   sends two more runs through the promotion gate), into a throw-away SQLite store in a
   temporary folder (the scripts run from there, so their artifacts land there too);
2. starts `mlflow ui` against that store on a free port of 127.0.0.1;
3. walks headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) through the
   pages the README shows, in MLflow's "Model training" view, and saves one PNG per page in
   docs/images/.

Run it from the repository (a minute or two):

    apt-get install chromium                          # once, as root
    .venv/bin/python -m pip install -r requirements/browser.txt
    .venv/bin/python -m testbeds.ui_tour          # make screenshots

tests/test_ui_browser.py walks the same pages with the functions below (all but the run
comparison, which needs a second forest and so a slower demo), so a UI change that breaks these
instructions fails the tests.

MLflow 3 opens in its GenAI view, with an "MLflow Assistant" chat panel on the right. The
switch at the top of the sidebar ("GenAI | Model training") selects the classic view for
experiments, runs and registered models; the browser remembers the choice in its localStorage
(key `mlflow.workflowType_v1`). `switch_to_model_training()` clicks it as a reader would.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
IMAGES = REPO / "docs" / "images"

RFC_EXPERIMENT = "breast-cancer-random-forest"
ANN_EXPERIMENT = "breast-cancer-neural-network"
MODEL_NAME = "breast-cancer-classifier"
CHAMPION = "champion"

# The runs of `make train`, so the pictures match what a reader sees after `make demo`.
DEMO_RUNS = [
    "train_rfc.py --n-estimators 50 --max-depth 3 --run-name rf-shallow",
    "train_rfc.py --n-estimators 100 --run-name rf-default",
    "train_rfc.py --n-estimators 300 --min-samples-leaf 5 --max-features 0.5 --run-name rf-smooth",
    "train_ann.py --hidden-layers 16 --run-name mlp-small",
    "train_ann.py --hidden-layers 64,32 --alpha 0.01 --run-name mlp-two-layers",
    "train_ann.py --hidden-layers 8 --alpha 1.0 --learning-rate 0.01 --run-name mlp-strong-penalty",
    "register_model.py",
]

# Chapter 7's search with its defaults: a parent run and ten trials.
SEARCH = "tune_rfc.py"
SEARCH_RUN = "rf-search-10trials"

# Chapter 8's gate: `make demo`'s refused challenger, then one the gate lets through.
GATE = [
    ("register_model.py --run-name rf-shallow", 1),
    ("register_model.py --run-name mlp-strong-penalty", 0),
]
PROMOTION_EXPERIMENT = "breast-cancer-promotion"

# The UI can take a few seconds per page on a busy machine; Playwright's default is 5 s.
expect.set_options(timeout=30_000)

# The server's job runner (eight background processes that serve GenAI features) is not needed
# to browse runs and models; without it `mlflow ui` starts in a third of the time.
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

# A small screen keeps the PNGs small and the text readable when GitHub scales them down.
VIEWPORT = {"width": 1280, "height": 800}

# Chromium must not phone home: no updates, sync, field trials or QUIC, only the page we open.
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--disable-gpu",
    *(["--no-sandbox"] if os.geteuid() == 0 else []),  # Chromium's sandbox refuses root
]


# --- The store and the UI -------------------------------------------------------------------


def demo_env(store_uri: str) -> dict[str, str]:
    """The reader's environment, pointed at the throw-away store, telemetry off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = store_uri
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def train_demo(workdir: Path, env: dict[str, str], runs=DEMO_RUNS) -> None:
    """Run the tutorial's scripts one after the other, from `workdir`.

    Each item is a command, expected to exit 0, or a (command, expected exit code) pair.
    """
    for item in runs:
        command, expected = item if isinstance(item, tuple) else (item, 0)
        print(f"  python {command}", flush=True)
        script, *args = shlex.split(command)
        result = subprocess.run(
            [sys.executable, str(REPO / script), *args],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if result.returncode != expected:
            sys.exit(f"error: {script} exited {result.returncode}:\n{result.stderr}")


def ui_command(store_uri: str, port: int) -> list[str]:
    """`mlflow ui` as the Makefile runs it; one worker is plenty for one browser."""
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow), "ui", "--backend-store-uri", store_uri]
    return command + ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


@contextmanager
def running_ui(store_uri: str, workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """Start `mlflow ui` on a free loopback port; yield its URL; stop its process group."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = open(workdir / "ui.log", "w")
    # Its own process group: stopping the group also stops the uvicorn worker it starts.
    ui = subprocess.Popen(
        ui_command(store_uri, port),
        env={**env, **UI_ENV},
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if ui.poll() is not None:
                raise RuntimeError(f"mlflow ui exited with {ui.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow ui did not answer on {url}") from None
                time.sleep(0.3)
        yield url
    finally:
        # TERM lets uvicorn shut down cleanly; KILL then ends whatever is left in the group.
        with suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            ui.wait(timeout=10)
        with suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)
        ui.wait()
        log.close()


# --- The browser ----------------------------------------------------------------------------


@contextmanager
def chromium_page(base_url: str) -> Iterator[Page]:
    """A headless Chromium tab with a fresh profile that may only reach `base_url`."""
    with (
        tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )

        def only_the_ui(route):
            if route.request.url.startswith((base_url, "data:", "blob:")):
                route.continue_()
            else:
                route.abort()

        try:
            # Belt and braces: a request for anything but the UI is refused, never sent.
            context.route("**/*", only_the_ui)
            page = context.pages[0] if context.pages else context.new_page()
            yield page
        finally:
            context.close()


# --- The pages the README shows ---------------------------------------------------------------


def switch_to_model_training(page: Page, base_url: str) -> None:
    """What the README tells a reader to do first: pick "Model training", close the assistant.

    The switch sits at the top of the left sidebar, under the MLflow logo. The assistant panel
    opens by itself on the first visit only; once closed it stays closed.
    """
    page.goto(f"{base_url}/#/experiments")
    page.get_by_text("Model training", exact=True).click()
    close_assistant = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    close_assistant.click()
    expect(close_assistant).to_be_hidden()
    # The classic view's sidebar has a "Model registry" entry; GenAI's has "Prompts" instead.
    expect(page.get_by_role("link", name="Model registry")).to_be_visible()


def show_experiments(page: Page, base_url: str) -> None:
    """Experiments in the sidebar: one row per experiment."""
    page.goto(f"{base_url}/#/experiments")
    for name in (RFC_EXPERIMENT, ANN_EXPERIMENT):
        expect(experiment_link(page, name)).to_be_visible()


def experiment_link(page: Page, name: str):
    # A row of the table: the sidebar may hold a link with the same name (the last experiment).
    return page.get_by_role("row").get_by_role("link", name=name, exact=True)


def show_runs(page: Page, base_url: str, experiment: str) -> None:
    """Click an experiment's name: its runs table."""
    show_experiments(page, base_url)
    experiment_link(page, experiment).click()
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()


def show_run_comparison(
    page: Page, base_url: str, experiment: str, x: str = "n_estimators", y: str = "test_f1"
) -> None:
    """Tick every run, press Compare, pick Scatter Plot, and plot metric `y` against param `x`."""
    show_runs(page, base_url, experiment)
    page.get_by_role("checkbox").first.click()  # the header box ticks all runs
    page.get_by_role("button", name="Compare").click()
    page.get_by_role("tab", name="Scatter Plot").click()
    for axis, name in (("x", x), ("y", y)):
        page.locator(f"#{axis}-axis-selector").click()
        page.get_by_role("option", name=name, exact=True).click()
    expect(page.locator("#x-axis-selector")).to_contain_text(x)
    expect(page.locator("#y-axis-selector")).to_contain_text(y)


def show_confusion_matrix(page: Page, base_url: str, experiment: str, run_name: str) -> None:
    """Click a run's name, then Artifacts, then confusion_matrix.png: the picture it logged."""
    show_runs(page, base_url, experiment)
    page.get_by_role("link", name=run_name, exact=True).click()
    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_text("confusion_matrix.png", exact=True).first.click()
    image = page.get_by_role("img", name="confusion_matrix.png")
    expect(image).to_be_visible()
    # Wait until the PNG has arrived and been decoded, not just until the <img> exists.
    image.evaluate("img => img.decode()")


def show_registered_model(page: Page, base_url: str, model_name: str = MODEL_NAME) -> None:
    """Model registry in the sidebar, then the model: its versions and their aliases."""
    page.goto(f"{base_url}/#/models")
    # On the first visit a dialog advertises the registry UI with aliases; that is the one.
    page.get_by_role("button", name="Try it now").click()
    page.get_by_role("link", name=model_name).click()
    expect(page.get_by_text(f"@ {CHAMPION}")).to_be_visible()


def show_search_children(page: Page, base_url: str, experiment: str, parent: str) -> None:
    """A search (tune_rfc.py) is one row in the runs table; its + button unfolds the trials."""
    show_runs(page, base_url, experiment)
    link = page.get_by_role("link", name=parent, exact=True)
    expect(link).to_be_visible()
    # The + sits in the same cell as the run's name.
    link.locator("xpath=ancestor::div[@role='gridcell'][1]").get_by_role("button").click()
    expect(page.get_by_role("link", name="trial-01", exact=True)).to_be_visible()


def show_promotion_decision(page: Page, base_url: str, name: str) -> None:
    """The gate's experiment, then one decision run: its verdict, reason, scores and params."""
    show_runs(page, base_url, PROMOTION_EXPERIMENT)
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_text("verdict", exact=True)).to_be_visible()


# --- The screenshots ------------------------------------------------------------------------


def save_png(page: Page, path: Path) -> None:
    """Screenshot the viewport, as a 256-colour PNG.

    A page of the UI has about 1,500 colours, nearly all of them anti-aliased text edges: the
    palette looks the same and makes the file 2.5 times smaller (about 25 KiB).
    """
    # No hover highlight or focus ring in the picture.
    page.mouse.move(0, VIEWPORT["height"] - 1)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.screenshot(path=path)
    with Image.open(path) as screenshot:
        palette = screenshot.convert("RGB").quantize(256, dither=Image.Dither.NONE)
    palette.save(path, optimize=True)
    print(f"  {path}  {path.stat().st_size // 1024} KiB", flush=True)


def capture(base_url: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with chromium_page(base_url) as page:
        switch_to_model_training(page, base_url)
        show_experiments(page, base_url)
        save_png(page, out / "ui-experiments.png")
        show_run_comparison(page, base_url, RFC_EXPERIMENT)
        save_png(page, out / "ui-compare-runs.png")
        show_confusion_matrix(page, base_url, RFC_EXPERIMENT, "rf-default")
        save_png(page, out / "ui-run-confusion-matrix.png")
        show_registered_model(page, base_url)
        save_png(page, out / "ui-registered-model.png")


def capture_search(base_url: str, out: Path) -> None:
    with chromium_page(base_url) as page:
        switch_to_model_training(page, base_url)
        show_search_children(page, base_url, RFC_EXPERIMENT, SEARCH_RUN)
        save_png(page, out / "ui-search-children.png")


def capture_gate(base_url: str, out: Path) -> None:
    with chromium_page(base_url) as page:
        switch_to_model_training(page, base_url)
        show_promotion_decision(page, base_url, "refused: rf-shallow vs version 1")
        save_png(page, out / "ui-promotion-gate.png")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=IMAGES,
        help="folder for the PNGs (default: docs/images)",
    )
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        sys.exit(f"error: {CHROMIUM} not found; install it with: apt-get install chromium")

    with tempfile.TemporaryDirectory(prefix="mlflow-tutorial-") as workdir:
        workdir = Path(workdir)
        store_uri = f"sqlite:///{workdir / 'mlflow.db'}"
        env = demo_env(store_uri)
        print(f"Training the demo into {store_uri}")
        train_demo(workdir, env)
        with running_ui(store_uri, workdir, env) as base_url:
            print(f"Capturing {base_url} into {args.out}")
            capture(base_url, args.out.resolve())
            # Chapter 7's search, added after the pictures of the demo that do not show it.
            train_demo(workdir, env, [SEARCH])
            capture_search(base_url, args.out.resolve())
            # Chapter 8's decisions, after the others: the champion changes here.
            train_demo(workdir, env, GATE)
            capture_gate(base_url, args.out.resolve())


if __name__ == "__main__":
    main()
