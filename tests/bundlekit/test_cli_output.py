"""What ``bundle`` prints: one line per verdict, whatever the file names hold.

A file name is chosen by whoever made the file.  A name with a newline in it must
not forge a second line (``OK ...``) that a script or a tired person reads as a
verdict, and escape sequences must not reach the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bundlekit.cli.output import escape

FORGED = "OK      site-a-00000001-0badf00d.bundle: site site-a seq 1, 1 records, signed by x"


def bundle(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BUNDLEKIT_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "bundlekit", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


def test_escape_keeps_printable_text_and_escapes_the_rest():
    assert escape("usb/São Tomé-00000001.bundle") == "usb/São Tomé-00000001.bundle"
    assert escape("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert escape("\x1b[2Jclear") == "\\x1b[2Jclear"
    assert escape("evil\u202egnp.bundle") == "evil\\u202egnp.bundle"  # right-to-left override
    assert escape("line\u2028separator") == "line\\u2028separator"
    assert escape(Path("x\ny")) == "x\\ny"


@pytest.mark.attack
@pytest.mark.parametrize("command", [["verify"], ["forward", "--out", "target"]])
def test_a_newline_in_a_file_name_does_not_forge_a_line(tmp_path, command):
    """A damaged file named ``x.bundle<newline>OK ...`` (given by name, as a shell glob
    ``stick/*`` would give it) is one INVALID/REFUSED line."""
    stick = tmp_path / "stick"
    stick.mkdir()
    (tmp_path / "target").mkdir()
    name = f"stick/x.bundle\n{FORGED}\n.bundle"
    (tmp_path / name).write_bytes(b"not a bundle at all")
    result = bundle(command[0], name, *command[1:], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(("INVALID", "REFUSED")), lines
    assert "\\nOK      site-a" in lines[0]
    assert not any(line.startswith("OK") for line in result.stdout.splitlines())
    assert list((tmp_path / "target").iterdir()) == []


@pytest.mark.attack
def test_an_escape_sequence_in_a_file_name_does_not_reach_the_terminal(tmp_path):
    (tmp_path / "\x1b]0;pwned\x07.bundle").write_bytes(b"junk")
    result = bundle("verify", "\x1b]0;pwned\x07.bundle", cwd=tmp_path)
    assert result.returncode == 1
    assert "\x1b" not in result.stdout + result.stderr and "\\x1b]0;pwned\\x07" in result.stdout


@pytest.mark.attack
def test_an_error_line_naming_such_a_file_is_one_line(tmp_path):
    """The one-line error path (a file that cannot be opened) escapes the name too."""
    result = bundle("inspect", f"missing\n{FORGED}", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("bundle: ") and "\\nOK" in line


def test_a_table_fits_80_columns_without_breaking_a_word(monkeypatch, capsys):
    """The import table on an 80-column terminal: numbers and statuses whole
    (never ``duplicat/e``); only the long site name folds."""
    from bundlekit.cli.output import table

    monkeypatch.setenv("COLUMNS", "80")
    table("import", ["site", "seq", "status", "applied", "dup", "stale", "conflict", "failed",
                     "gaps"],
          [["household-survey-district-north", 12, "duplicate", 0, 40, 0, 0, 0, "-"],
           ["site-b", 3, "waiting-for-gap", 10, 0, 0, 0, 0, "1, 2"]])
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), lines
    header = next(line for line in lines if "status" in line)
    assert header.split()[1:] == ["seq", "status", "applied", "dup", "stale", "conflict",
                                  "failed", "gaps"]
    assert any(" duplicate " in line for line in lines)
    assert any("waiting-for-gap" in line and line.rstrip().endswith("1, 2") for line in lines)


def test_help_texts_are_paragraphs():
    """Every command's help (core and plugins) keeps each paragraph on one line:
    the terminal wraps it, never the source file's 100-column docstrings."""
    from bundlekit.cli.app import app, load_commands

    load_commands()
    helps = {}

    def collect(typer_app, prefix=""):
        for info in typer_app.registered_commands:
            helps[prefix + (info.name or info.callback.__name__)] = info.help
        for group in typer_app.registered_groups:
            helps[prefix + group.name] = group.typer_instance.info.help
            collect(group.typer_instance, prefix + group.name + " ")

    collect(app)
    assert {"verify", "export", "prune", "keys rotate", "forward"} <= set(helps)
    for name, text in helps.items():
        assert text, name
        for paragraph in text.split("\n\n"):
            assert "\n" not in paragraph, (name, paragraph)


def test_without_django_the_django_commands_are_hidden(monkeypatch):
    """A middleman with the core alone: `bundle --help` lists what works there."""
    import importlib.util

    import typer

    from django_adapter import cli as plugin

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "django" else real(name, *a))
    app = typer.Typer()
    plugin.register(app)
    assert {c.name for c in app.registered_commands} >= {"export", "import", "enqueue-existing"}
    assert all(c.hidden for c in app.registered_commands)
    monkeypatch.setattr(importlib.util, "find_spec", real)
    shown = typer.Typer()
    plugin.register(shown)
    assert not any(c.hidden for c in shown.registered_commands)
