"""One-line errors: what server_errors.first_line keeps of an error, the flag rules, the
registry's wording, predict.py's own small parsers."""

from __future__ import annotations

import argparse

import pytest

import input_checks
import predict
import registry_messages
from server_errors import first_line


def test_first_line_keeps_the_first_line_or_the_errors_name():
    assert first_line("one\ntwo") == "one"
    assert first_line(ValueError("")) == "ValueError"


def test_first_line_shortens_a_failed_request_to_what_was_asked():
    line = first_line(
        "API request to http://127.0.0.1:5050/api/2.0/mlflow/runs/get?run_id=abc failed with "
        "exception HTTPConnectionPool(host='127.0.0.1', port=5050): Max retries exceeded"
    )
    assert line.startswith("request to http://127.0.0.1:5050/api/2.0/mlflow/runs/get failed: ")
    assert "run_id" not in line


def parser_with(*flags: tuple[str, type]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_rfc.py")
    for flag, kind in flags:
        parser.add_argument(flag, type=kind)
    return input_checks.strict(parser)


@pytest.mark.parametrize(
    "flag, kind, value, expected",
    [
        ("--n-estimators", int, "0", "must be a whole number >= 1, got 0"),
        ("--test-size", float, "1", "must be between 0 and 1 (exclusive), got 1"),
        ("--max-features", str, "2", "must be sqrt, log2 or a fraction in (0, 1], got 2"),
        ("--min-f1-gain", float, "-0.1", "must be a number in [0, 1), got -0.1"),
    ],
)
def test_a_flag_out_of_range_is_one_line(capsys, flag, kind, value, expected):
    with pytest.raises(SystemExit) as stopped:
        parser_with((flag, kind)).parse_args([flag, value])
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"train_rfc.py: error: argument {flag}: {expected} (see --help)"


def test_flags_in_range_pass_as_their_type():
    args = parser_with(("--n-estimators", int), ("--max-features", str)).parse_args(
        ["--n-estimators", "5", "--max-features", "sqrt"]
    )
    assert (args.n_estimators, args.max_features) == (5, "sqrt")


def test_a_refusal_says_the_alias_did_not_move():
    with pytest.raises(SystemExit) as stopped:
        registry_messages.stop("no run with id 'x'", "prod")
    assert str(stopped.value) == "error: no run with id 'x'; the 'prod' alias was left unchanged"


def test_an_alias_move_is_told_as_it_happened(capsys):
    registry_messages.say_alias_moved("champion", None, "1")
    registry_messages.say_alias_moved("champion", "1", 1)
    registry_messages.say_alias_moved("champion", "1", "2")
    assert capsys.readouterr().out.splitlines() == [
        "Alias 'champion' now points at version 1.",
        "Alias 'champion' already pointed at version 1.",
        "Alias 'champion' moved: version 1 -> version 2.",
    ]


def test_predict_keeps_mlflows_reason_and_wants_a_url():
    message = "Failed to enforce schema of data '   a\n0  1' with schema ['x': double]. Error: Model is missing inputs ['x']."
    assert predict.schema_error(message) == "Model is missing inputs ['x']."
    assert predict.server_url("http://127.0.0.1:5001") == "http://127.0.0.1:5001"
    with pytest.raises(argparse.ArgumentTypeError, match="must start with http:// or https://"):
        predict.server_url("127.0.0.1:5001")
