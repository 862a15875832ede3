"""Progress bars: records/s for records, MB/s for bytes, drawn on stderr only when
it is a terminal; a script (pipes, files) gets no escape codes at all."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import pytest
from rich.console import Console

from bundlekit.cli import output as cli
from bundlekit.writer import ChainLink, seal
from tests.bundlekit.conftest import make_records


def drawn(monkeypatch, unit: str, steps: list[int]) -> str:
    """What progress() draws on a terminal for ``steps``, escape codes removed."""
    screen = io.StringIO()
    monkeypatch.setattr(cli, "interactive", lambda: True)
    monkeypatch.setattr(
        cli, "_stderr_console", lambda: Console(file=screen, force_terminal=True, width=120)
    )
    with cli.progress("working", total=sum(steps), unit=unit) as advance:
        for n in steps:
            time.sleep(0.02)  # the rate needs two samples some time apart
            advance(n)
    return screen.getvalue()


def test_records_read_records_per_second(monkeypatch):
    screen = drawn(monkeypatch, "records", [1000, 1000, 500])
    assert "records/s" in screen and "2500/2500" in screen and "MB/s" not in screen


def test_bytes_read_megabytes_per_second(monkeypatch):
    screen = drawn(monkeypatch, "bytes", [4_000_000, 4_000_000])
    assert "MB/s" in screen and "8.0/8.0 MB" in screen and "records" not in screen


def test_other_units_are_named(monkeypatch):
    screen = drawn(monkeypatch, "files", [1, 1, 1])
    assert "files/s" in screen and "3/3" in screen and "records" not in screen


@pytest.fixture
def usb(tmp_path, site, community):
    out = tmp_path / "usb"
    out.mkdir()
    seal(make_records(300), identity=site, recipients=[community.public], out_dir=out,
         after=ChainLink(0, None))
    return out


def run_verify(usb, **streams) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BUNDLEKIT_NO_PROGRESS"}
    env.update(TERM="xterm-256color", COLUMNS="120")
    return subprocess.run(
        [sys.executable, "-m", "bundlekit", "verify", str(usb)],
        env=env,
        timeout=60,
        **streams,
    )


def test_not_on_a_terminal_no_escape_codes(usb):
    """The default (no BUNDLEKIT_NO_PROGRESS): stdout and stderr are pipes, so no bar."""
    proc = run_verify(usb, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK ")
    assert "\x1b" not in proc.stdout + proc.stderr
    assert proc.stderr == ""


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_bar_on_a_terminal_stdout_to_a_file_stays_clean(usb, tmp_path):
    """stderr on a terminal draws the bar there; stdout sent to a file gets the
    result lines only, not redirected through the bar."""
    primary, secondary = os.openpty()
    report = tmp_path / "report.txt"
    with report.open("w") as stdout:
        proc = run_verify(usb, stdout=stdout, stderr=secondary)
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    assert proc.returncode == 0, screen
    assert b"verifying" in screen and b"\x1b[" in screen
    text = report.read_text()
    assert text.startswith("OK ") and "\x1b" not in text
