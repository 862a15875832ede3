"""The README quickstart is run as written: its shell block, then the REST block
(the server line in the background, on a free port instead of 8000), then its
sample output checked against what the commands really print.

Runs from the repository root with a temporary $HOME (the blocks work in
``~/field``), using the project's ``.venv`` as the block says.  SQLite only; the
server listens on 127.0.0.1 only.
"""

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
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


def rest_block() -> str:
    (script,) = [b for b in blocks("sh") if "runserver" in b]
    return script


def sample_commands() -> list[str]:
    (sample,) = [b for b in blocks("text") if b.startswith("$ ")]
    return [line[2:] for line in sample.splitlines() if line.startswith("$ ")]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


def clean_env(home) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FIELD_", "DJANGO_", "BUNDLEKIT_"))
    }
    env.update(HOME=str(home), BUNDLEKIT_NO_PROGRESS="1")
    return env


@pytest.fixture(scope="module")
def run(home):
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quickstart()],
        cwd=ROOT,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc


def answers(url: str, server: subprocess.Popen, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    request = urllib.request.Request(url, headers={"Authorization": "Bearer field-demo-token"})
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def rest(run, home):
    """The REST block after the quickstart: "a second terminal set up like the first"
    is the quickstart's lines before ``mkdir ~/field``, then ``cd ~/field``."""
    assert run.returncode == 0, run.stderr[-3000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    setup = quickstart().split("mkdir ~/field")[0] + "cd ~/field\n"
    lines = rest_block().replace("127.0.0.1:8000", f"127.0.0.1:{port}").splitlines(keepends=True)
    (serve,) = [line for line in lines if "runserver" in line]
    assert f"127.0.0.1:{port}" in serve
    log = (home / "runserver.log").open("w")
    server = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", setup + serve],
        cwd=ROOT,
        env=clean_env(home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert answers(f"http://127.0.0.1:{port}/bundles/", server), (home / "runserver.log").read_text()
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", setup + "".join(lines).replace(serve, "")],
            cwd=ROOT,
            env=clean_env(home),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
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


def test_the_refused_record_goes_around_the_loop(run):
    """Entered, refused with a reason, kept at the site, fixed, applied, pruned."""
    out = run.stdout
    reason = "IntegrityError: UNIQUE constraint failed: clinic_participant.subject_identifier"
    assert re.search(r"^applied  laptop-b-00000002-.*applied 0, .*failed 1$", out, re.M)
    assert re.search(rf"^  failed   clinic.participant .*: {reason}$", out, re.M)
    assert re.search(rf"^failed +laptop-b clinic.participant 066-11100001-3 .*: {reason}$", out, re.M)
    assert "1 kept here (failed 1)" in out
    assert re.search(rf"^  kept     failed     clinic.participant .*\(seq 2, tx .*{reason}$", out, re.M)
    assert re.search(r"^applied  laptop-b-00000003-.*applied 1, .*failed 0$", out, re.M)
    assert "retried 1 transaction(s): applied 0, superseded 1, failed 0" in out
    assert "pruned 2 confirmed transaction(s), 1 outbox file(s)" in out
    assert out.rstrip().splitlines()[-1].startswith(
        "site laptop-b: 0 pending, 0 exported (no receipt yet), 0 acknowledged, 0 kept here")


def test_the_rest_block_runs_as_written(rest):
    assert rest.returncode == 0, rest.stdout[-3000:] + rest.stderr[-3000:]
    assert "Traceback" not in rest.stderr


def test_the_rest_block_does_what_it_says(rest):
    out = rest.stdout
    assert re.search(r"^IMPORTED .*site laptop-a seq 2, 1 applied", out, re.M)
    assert "1 bundle(s) acknowledged (1 transactions), 1 already" in out
    assert "pruned 1 confirmed transaction(s), 1 outbox file(s)" in out
    assert "sender laptop-a: applied through seq 2, open gaps: none" in out


def test_sample_output_shows_commands_of_the_quickstart():
    script = quickstart() + rest_block()
    for command in sample_commands():
        assert command in script, command


def test_sample_output_lines_are_real(run, rest):
    """Each sample line, with its file names, digests, paths and times made generic,
    matches a line the quickstart (or the REST block) really printed."""
    (sample,) = [b for b in blocks("text") if b.startswith("$ ")]

    def generic(line: str) -> str:
        line = re.sub(r"[0-9a-f]{4}(-[0-9a-f]{4}){7}", "FP", line)
        line = re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "UUID", line)
        line = re.sub(r"-[0-9a-f]{8}\.(bundle|receipt)", r"-X.\1", line)
        line = re.sub(r"\d{8}t\d{6}z", "T", line)
        line = re.sub(r"\d\d-\d\d \d\d:\d\d", "TIME", line)
        line = re.sub(r"\S*/((middleman|server|laptop-a|laptop-b)/)", r"\1", line)
        return line.replace(".../", "")

    real = {generic(line) for line in (run.stdout + rest.stdout).splitlines()}
    for line in sample.splitlines():
        if line and not line.startswith("$ "):
            assert generic(line) in real, line
