"""bundlekit never imports Django: a middleman laptop or a non-Django producer
must be able to seal and verify bundles with the core alone."""

import subprocess
import sys


def test_core_and_cli_import_without_django():
    code = (
        "import sys, bundlekit, bundlekit.errors\n"
        "import importlib.util\n"
        "for name in ('bundlekit.cli', 'bundlekit.reader', 'bundlekit.writer'):\n"
        "    if importlib.util.find_spec(name):\n"
        "        __import__(name)\n"
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if 'django' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
