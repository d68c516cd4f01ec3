"""MLflow's UI in a real browser: what the README's screenshots show is there after a demo.

The pages are walked with the same functions that take the screenshots
(tests/testbeds/ui_tour.py), in headless Chromium: Debian's /usr/bin/chromium driven by
Playwright (requirements/browser.txt).
"""

from __future__ import annotations

import shutil

import pytest

from conftest import free_port, wait_for_http

CHROMIUM = "/usr/bin/chromium"
if not shutil.which(CHROMIUM):
    pytest.skip(f"{CHROMIUM} not found: apt-get install chromium", allow_module_level=True)
expect = pytest.importorskip(
    "playwright.sync_api", reason="playwright missing: pip install -r requirements/browser.txt"
).expect

from testbeds import ui_tour as tour  # noqa: E402  (after the skips: it imports playwright)


@pytest.fixture
def ui_url(trained_store, start_process):
    """`mlflow ui` on a free loopback port, reading the session's trained store (two forests,
    one network) with a registered champion, then a two-trial search. (tests/testbeds/ui_tour.py
    walks the run comparison too.)"""
    port = free_port()
    store = trained_store
    # Start the UI first: it boots while the scripts train, and reads the store per request.
    ui = start_process(
        tour.ui_command(store.uri, port),
        env={**store.env, **tour.UI_ENV},
        cwd=store.root,
        log=store.root / "ui.log",
    )
    store.run("register_model.py")
    store.run("tune_rfc.py", "--trials", "2", "--folds", "2", "--run-name", "rf-search")
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/health", ui)
    return url


@pytest.fixture
def page(ui_url):
    """A fresh headless Chromium tab; the browser is closed after the test, pass or fail."""
    with tour.chromium_page(ui_url) as page:
        yield page


def test_the_ui_shows_experiments_runs_the_confusion_matrix_and_the_champion(ui_url, page):
    # The README's first step: from the GenAI view to the "Model training" view.
    tour.switch_to_model_training(page, ui_url)
    assert page.evaluate("localStorage.getItem('mlflow.workflowType_v1')") == '"machine_learning"'

    tour.show_experiments(page, ui_url)
    for experiment in (tour.RFC_EXPERIMENT, tour.ANN_EXPERIMENT):
        expect(tour.experiment_link(page, experiment)).to_be_visible()

    tour.show_runs(page, ui_url, tour.ANN_EXPERIMENT)
    expect(page.get_by_role("link", name="network", exact=True)).to_be_visible()
    tour.show_runs(page, ui_url, tour.RFC_EXPERIMENT)
    expect(page.get_by_role("link", name="forest", exact=True)).to_be_visible()

    tour.show_confusion_matrix(page, ui_url, tour.RFC_EXPERIMENT, "forest")
    expect(page.get_by_role("img", name="confusion_matrix.png")).to_be_visible()

    tour.show_registered_model(page, ui_url)
    expect(page.get_by_role("heading", name=tour.MODEL_NAME)).to_be_visible()
    expect(page.get_by_text(f"@ {tour.CHAMPION}")).to_be_visible()

    # Chapter 7: a search is one row; its + unfolds the trials beneath it.
    tour.show_search_children(page, ui_url, tour.RFC_EXPERIMENT, "rf-search")
    expect(page.get_by_role("link", name="trial-02", exact=True)).to_be_visible()
