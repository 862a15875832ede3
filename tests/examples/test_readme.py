"""The README quickstart is run as written: its shell block, then its sample output
checked against what the commands really print.

Runs from the repository root with a temporary $HOME (the block works in
``~/field``), using the project's ``.venv`` as the block says.  SQLite only.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

pytestmark = [
    pytest.mark.sqlite_only,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("BUNDLEKIT_TEST_DB", "sqlite") != "sqlite",
        reason="the quickstart is SQLite only; it runs in the SQLite pass",
    ),
    pytest.mark.skipif(
        not (ROOT / ".venv" / "bin" / "activate").is_file(),
        reason="the quickstart activates .venv, which make demo / make test create",
    ),
]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", README.read_text(), re.S | re.M)


def quickstart() -> str:
    (script,) = [b for b in blocks("sh") if "mkdir ~/field" in b]
    return script


def sample_commands() -> list[str]:
    (sample,) = [b for b in blocks("text") if b.startswith("$ ")]
    return [line[2:] for line in sample.splitlines() if line.startswith("$ ")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIELD_", "DJANGO_"))}
    env.update(HOME=str(home), BUNDLEKIT_NO_PROGRESS="1")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quickstart()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc


def test_quickstart_runs_as_written(run):
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr


def test_quickstart_does_what_it_says(run):
    out = run.stdout
    assert "site laptop-a seq 1, 14 records: applied 14" in out
    assert "site laptop-b seq 1, 10 records: applied 10" in out
    assert "1 bundle(s) acknowledged (14 transactions)" in out
    assert "1 bundle(s) acknowledged (10 transactions)" in out
    assert "pruned 14 confirmed transaction(s), 1 outbox file(s)" in out
    assert re.search(r"^duplicate .*applied 0, duplicate 14", out, re.M)


def test_sample_output_shows_commands_of_the_quickstart():
    script = quickstart()
    for command in sample_commands():
        assert command in script, command


def test_sample_output_lines_are_real(run):
    """Each sample line, with its file names, digests, paths and times made generic,
    matches a line the quickstart really printed."""
    (sample,) = [b for b in blocks("text") if b.startswith("$ ")]

    def generic(line: str) -> str:
        line = re.sub(r"[0-9a-f]{4}(-[0-9a-f]{4}){7}", "FP", line)
        line = re.sub(r"-[0-9a-f]{8}\.(bundle|receipt)", r"-X.\1", line)
        line = re.sub(r"\d{8}t\d{6}z", "T", line)
        line = re.sub(r"\d\d-\d\d \d\d:\d\d", "TIME", line)
        line = re.sub(r"\S*/((middleman|server)/)", r"\1", line)
        return line.replace(".../", "")

    real = {generic(line) for line in run.stdout.splitlines()}
    for line in sample.splitlines():
        if line and not line.startswith("$ "):
            assert generic(line) in real, line
