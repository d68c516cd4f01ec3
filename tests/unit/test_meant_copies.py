"""Copies that are meant, held equal: a training script must run copied alone, so its helpers
are written out in each script, not imported. These tests fail when one copy changes and its
twins do not, and say which lines differ; each copy names its twins in a comment.

Held equal: `pinned_requirements` and the packages it is given (MODEL_PACKAGES), `held_out_scores`, `confusion_matrix_figure` and the table's preparation in
train_rfc.py, train_ann.py and tune_rfc.py; `print_summary` in the two training scripts; the
safety-net block at the bottom of all three; and the metric names the README's quickstart and
register_model.py rank by.
"""

from __future__ import annotations

import ast
import difflib
import re

import pytest

from conftest import REPO

SCRIPTS = ["train_rfc.py", "train_ann.py", "tune_rfc.py"]
TWIN_NOTE = "# A meant copy"


def source(script: str) -> str:
    return (REPO / script).read_text()


def function(script: str, name: str) -> str:
    """The function's code without its docstring (a copy may say what it is a copy of)."""
    tree = ast.parse(source(script))
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if ast.get_docstring(node):
        node.body = node.body[1:]
    return ast.unparse(node)


def assert_equal(copies: dict[str, str]) -> None:
    (first, text), *others = copies.items()
    for other, other_text in others:
        diff = "\n".join(
            difflib.unified_diff(
                text.splitlines(), other_text.splitlines(), first, other, lineterm=""
            )
        )
        assert text == other_text, f"{first} and {other} differ:\n{diff}"


@pytest.mark.parametrize(
    "name, scripts",
    [
        ("pinned_requirements", SCRIPTS),
        ("held_out_scores", SCRIPTS),
        ("confusion_matrix_figure", SCRIPTS),
        ("print_summary", SCRIPTS[:2]),
    ],
)
def test_the_shared_helpers_are_equal_and_name_their_twins(name, scripts):
    assert_equal({script: function(script, name) for script in scripts})
    for script in scripts:
        text = source(script)
        above = text[: text.index(f"def {name}(")].rstrip().splitlines()
        block = []  # the comment lines right above the def
        while above and above[-1].startswith("#"):
            block.insert(0, above.pop())
        note = " ".join(block)
        assert note.startswith(TWIN_NOTE), f"{script}: no '{TWIN_NOTE}' comment above {name}"
        for twin in scripts:
            assert twin == script or twin in note, f"{script}: the note above {name} omits {twin}"


def preparation(script: str) -> str:
    """The lines that read the table and split the columns by kind."""
    text = source(script)
    start = text.index("    numbers = features.select_dtypes(")
    return "\n".join(text[start:].splitlines()[:3])


def test_the_tables_preparation_is_the_same_in_every_script():
    assert_equal({script: preparation(script) for script in SCRIPTS})


def test_every_script_pins_the_same_packages():
    assert_equal(
        {script: re.search(r"^MODEL_PACKAGES = .*$", source(script), re.M)[0] for script in SCRIPTS}
    )


def safety_net(script: str) -> str:
    text = source(script)
    return text[text.index("# --- Not the lesson: the safety nets") :]


def test_the_safety_net_block_is_the_same_at_the_bottom_of_every_script():
    assert_equal({script: safety_net(script) for script in SCRIPTS})


def test_the_quickstart_logs_the_metrics_register_model_ranks_by():
    readme = (REPO / "README.md").read_text()
    quickstart = readme.split("<!-- docs-test: quickstart -->")[1]
    metric = re.search(r'^METRIC = "(\w+)"', source("register_model.py"), re.M)
    assert metric, "register_model.py has no METRIC"
    logged = set(re.findall(r'"(test_\w+)":', quickstart))
    assert metric[1] in logged
    # ast.unparse writes the script's strings in single quotes
    assert logged <= set(re.findall(r"'(test_\w+)'", function("train_rfc.py", "held_out_scores")))
