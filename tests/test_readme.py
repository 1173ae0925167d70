"""The README's set-up commands are the ones CI runs and the ones the tests exercise."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands():
    return re.findall(r"```sh\n(python3 -m venv .*)\n```", (ROOT / "README.md").read_text())


def test_readme_has_the_two_set_up_commands():
    train, test = commands()
    assert train.endswith("xpbp train") and "pip install -e ." in train
    assert test.endswith("python -m pytest") and "pip install -e '.[test]'" in test


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands()[1] in ci
