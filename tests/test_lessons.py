"""Chapters 5, 6 and 8's lessons on one screen, pasted into the quickstart's folder.

Each of those chapters ends with a short block (`<!-- docs-test: lesson -->`) that a reader
pastes into the folder where the README's quickstart ran, with its `register_model.py` command
(so that `champion` names version 1 there). The README's quickstart runs once per session in
such a folder (`quickstart_folder`, in test_quickstart.py, which checks it); each test runs its
chapter's blocks as written in a copy of it, and checks what the reader would look at: the
alias moved and moved back, the same predictions in-process and over HTTP, a weaker
challenger refused and a better one promoted. Each output is clean and matches the text block
the page shows after the block, if any.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from mlflow import MlflowClient
from test_docs import LESSONS, Block, matches, page_blocks
from test_quickstart import (
    quickstart_code,
    quickstart_folder,  # noqa: F401 (the session's, made once for both)
    reader_env,
)

from conftest import (
    PYTHON,
    assert_clean,
    free_port,
    run_command,
    wait_for_http,
)

MODEL = "breast-cancer-classifier"
STUMP = "RandomForestClassifier(n_estimators=1, max_depth=1, random_state=42)"


def lessons(page: str) -> list[Block]:
    return [block for block in page_blocks(page) if block.marker == "lesson"]


def quickstart(folder: Path, code: str | None = None) -> None:
    """The README's quickstart (or a reader's change of it), run in `folder`."""
    (folder / "quickstart.py").write_text(code or quickstart_code())
    assert_clean(run_command([PYTHON, "quickstart.py"], env=reader_env(), cwd=folder, timeout=180))


@pytest.fixture
def folder(request, tmp_path) -> Path:
    """This test's own copy of the quickstart's folder (its store; the runs' artifacts stay in
    the shared folder, where the experiments' absolute artifact locations point)."""
    shared = request.getfixturevalue("quickstart_folder")
    return Path(shutil.copytree(shared, tmp_path / "my project"))


def run_lesson(block: Block, folder: Path, name: str, env=None, exits=0, shown=True):
    """The block saved under the name the page suggests and run there, as the reader does;
    its output clean, and (`shown`) the one the page's text block after it shows."""
    (folder / name).write_text(block.code + "\n")
    result = subprocess.run(
        [PYTHON, name],
        env=env or reader_env(),
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows it
        text=True,
        timeout=240,
    )
    assert result.returncode == exits, f"{name} exited {result.returncode}:\n{result.stdout}"
    assert_clean(SimpleNamespace(stdout=result.stdout, stderr=""))
    if shown and block.expected is not None:
        assert matches(result.stdout, block.expected), (
            f"{block.where}: not its text block:\n{result.stdout}"
        )
    return result.stdout


def champion(folder: Path) -> str:
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    return str(client.get_model_version_by_alias(MODEL, "champion").version)


@pytest.mark.quick
def test_each_lesson_fits_on_one_screen():
    for page in LESSONS:
        (code,) = [block.code for block in lessons(page) if block.language == "python"]
        assert len(code.splitlines()) <= 42, f"{page}: the lesson is longer than a screen"
        if "load_model(" in code or "evaluate(" in code:  # it deserializes a model
            assert "get_model_info(" in code, f"{page}: read the MLmodel before loading"


def test_chapter_5_moves_the_alias_and_rolls_it_back(folder):
    (block,) = lessons("docs/05-register.md")
    output = run_lesson(block, folder, "register.py")
    assert f"{MODEL}@champion: version 1 -> version 2" in output
    assert f"{MODEL}@champion: rolled back to version 1" in output
    assert champion(folder) == "1"
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    (best,) = client.search_runs([client.get_experiment_by_name("quickstart").experiment_id])
    assert client.get_model_version(MODEL, "2").run_id == best.info.run_id  # kept, to roll forward


def test_chapter_6_predicts_the_same_in_process_and_over_http(folder, start_process, tmp_path):
    server, client_code = lessons("docs/06-serve-and-predict.md")
    assert server.language == "bash" and client_code.language == "python"
    port = free_port()
    assert server.code.count("--port 5001") == 1
    command = server.code.replace("--port 5001", f"--port {port}")
    log = tmp_path / "server.log"
    process = start_process(["bash", "-c", command], env=reader_env(), cwd=folder, log=log)
    wait_for_http(f"http://127.0.0.1:{port}/ping", process)

    env = dict(reader_env(), MODEL_URL=f"http://127.0.0.1:{port}")
    output = run_lesson(client_code, folder, "predict.py", env=env)
    here, served = re.findall(r"version 1 (?:here|served): +(\[.*\])", output)
    assert here == served and here.count("'") == 10  # five labels, the same both ways
    assert_clean(SimpleNamespace(stdout=log.read_text(), stderr=""))  # the server's log


def test_chapter_8_refuses_a_weaker_challenger_and_promotes_a_better_one(folder):
    (block,) = lessons("docs/08-promotion-gate.md")
    # The challenger the page suggests: the quickstart again, with a one-split stump.
    quickstart(folder, quickstart_code().replace("RandomForestClassifier(random_state=42)", STUMP))
    refused = run_lesson(block, folder, "gate.py", exits=1)  # the page shows this one
    assert "refused; the champion stays version 1" in refused
    assert champion(folder) == "1"

    # The stump as the champion (registered, the alias on it), then the forest trained again.
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    stump = client.search_runs([experiment], order_by=["attributes.start_time DESC"])[0]
    (model,) = client.search_logged_models([experiment], f"source_run_id = '{stump.info.run_id}'")
    mlflow.set_tracking_uri(client.tracking_uri)
    version = mlflow.register_model(f"models:/{model.model_id}", MODEL).version
    client.set_registered_model_alias(MODEL, "champion", version)
    quickstart(folder)
    promoted = run_lesson(block, folder, "gate.py", shown=False)
    assert "promoted: champion version 2 -> version 3" in promoted
    assert champion(folder) == "3"
    gate = client.get_experiment_by_name("quickstart-gate").experiment_id
    assert {run.info.run_name for run in client.search_runs([gate])} == {"challenger", "champion"}
