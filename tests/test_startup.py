"""What starting a command costs: the modules it loads before doing anything.

A field laptop is slow and the server's ``manage.py bundle import`` is timed as a
whole process (issue 12), so a command loads what it uses and no more:

- ``import bundlekit`` loads none of its submodules: the public names come on
  first use, so cryptography, msgpack and zstandard wait for a command that
  seals, reads or signs;
- ``bundle --version`` loads no plugin and no rich; ``bundle --help`` (rich
  draws it) still loads no cryptography or codec;
- loading ``manage.py bundle`` does not have django-typer search for the module
  that made its app (``inspect.getmodule`` resolves the path of every loaded
  module) and reads no package metadata.

Each check runs in a fresh interpreter, since what matters is what one start loads.
No timings: what is loaded is what costs, and it does not depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Loaded only by a command that signs, encrypts, seals or reads bundles.
CRYPTO_AND_CODECS = ("cryptography", "msgpack", "zstandard")


def fresh(code: str, *, django: bool = False) -> tuple[set[str], str]:
    """Run ``code`` in a new interpreter; return the modules it left loaded and its
    output (``code`` writes to stdout; the module list comes on the last line)."""
    env = {**os.environ, "BUNDLEKIT_NO_PROGRESS": "1", "COLUMNS": "100"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if django:
        env["DJANGO_SETTINGS_MODULE"] = "tests.test_project.settings"
    code += "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    *output, modules = result.stdout.splitlines()
    return set(json.loads(modules)), "\n".join(output)


def loaded(modules: set[str], *names: str) -> list[str]:
    """Which of ``names`` (packages: with their submodules) are among ``modules``."""
    return sorted(m for m in modules for n in names if m == n or m.startswith(n + "."))


def test_import_bundlekit_loads_no_submodule():
    modules, _ = fresh("import bundlekit")
    assert loaded(modules, *CRYPTO_AND_CODECS) == []
    assert sorted(m for m in modules if m.startswith("bundlekit.")) == []


def test_bundlekit_names_load_on_first_use():
    import bundlekit
    from bundlekit import seal, verify
    from bundlekit.reader import verify as reader_verify
    from bundlekit.writer import seal as writer_seal

    assert (seal, verify) == (writer_seal, reader_verify)
    assert set(bundlekit.__all__) <= set(dir(bundlekit))
    for name in bundlekit.__all__:
        assert getattr(bundlekit, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        bundlekit.no_such_name  # noqa: B018


def test_bundle_version_loads_no_plugin_rich_or_crypto():
    modules, output = fresh("from bundlekit.cli import main\nmain(['--version'])")
    assert output.startswith("bundlekit ")
    assert loaded(modules, "django_adapter", "rich", *CRYPTO_AND_CODECS) == []


def test_bundle_help_lists_the_plugins_and_loads_no_crypto():
    modules, output = fresh("from bundlekit.cli import main\nmain(['--help'])")
    assert "export" in output and "keygen" in output  # a plugin's command and a core one
    assert loaded(modules, "django", *CRYPTO_AND_CODECS) == []


@pytest.mark.parametrize("argv, shows", [
    (["--version", "--help"], "version"),
    (["--help", "--version"], "help"),
    (["--bogus", "--version"], "usage error"),
])
def test_version_and_help_together_keep_their_order(argv: list[str], shows: str):
    """typer acts on the first of two eager options, so skipping the plugins for
    ``--version`` must not change what ``--help --version`` prints."""
    result = subprocess.run([sys.executable, "-m", "bundlekit", *argv], capture_output=True,
                            text=True, cwd=ROOT, timeout=120, env={**os.environ, "COLUMNS": "100"})
    if shows == "version":
        assert (result.returncode, result.stdout.split()[0]) == (0, "bundlekit")
    elif shows == "help":
        assert result.returncode == 0 and "export" in result.stdout
    else:
        assert result.returncode == 2 and "--bogus" in result.stderr


@pytest.mark.sqlite_only
def test_loading_manage_py_bundle_searches_no_module():
    code = (
        "import inspect, django\n"
        "django.setup()\n"
        "before = set(sys.modules)\n"
        "calls = []\n"
        "real = inspect.getmodule\n"
        "inspect.getmodule = lambda *a, **k: calls.append(a) or real(*a, **k)\n"
        "from django.core.management import load_command_class\n"
        "command = load_command_class('django_adapter', 'bundle')\n"
        "print(json.dumps({'getmodule_calls': len(calls), 'commands': sorted(\n"
        "    i.name for i in command.typer_app.registered_commands),\n"
        "    'loaded': sorted(set(sys.modules) - before)}))\n"
    )
    _, output = fresh("import json, sys\n" + code, django=True)
    seen = json.loads(output)
    from django_adapter.cli import COMMANDS

    assert seen["commands"] == sorted([name for name, *_ in COMMANDS] + ["verify", "forward"])
    assert seen["getmodule_calls"] == 0
    assert loaded(set(seen["loaded"]), "importlib.metadata") == []
