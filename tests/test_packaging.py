"""The packages a user installs: ``python -m build`` makes an sdist and a wheel, and
the wheel, installed (not editable) into a fresh virtualenv, runs ``bundle``,
``manage.py bundle``, ``migrate`` and a seal/verify, outside this source tree.

The new venv gets bundlekit from the wheel only; its dependencies (Django,
cryptography, ...) come from this test environment through a ``.pth`` file, so
the test needs no network and checks what the wheel holds, not what PyPI serves.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.sqlite_only,
    pytest.mark.skipif(
        os.environ.get("BUNDLEKIT_TEST_DB", "sqlite") != "sqlite",
        reason="packaging runs once, in the SQLite pass",
    ),
]

#: Not part of what is built: venvs, build output, caches.
IGNORE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__",
                                ".pytest_cache", ".hypothesis", ".ruff_cache", "var", "out")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # Run from outside the source tree: a stray build/ folder there is no `build` module.
    if subprocess.run([sys.executable, "-m", "build", "--version"], cwd=out,
                      capture_output=True).returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("`build` is missing: it is in the test extras (pip install -e '.[test]')")
        pytest.skip("`build` is not installed: pip install -e '.[test]'")
    src = tmp_path_factory.mktemp("src") / "bundlekit"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)],
                            cwd=out, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def wheel_of(dist: Path) -> Path:
    (wheel,) = dist.glob("bundlekit-*.whl")
    return wheel


def test_build_makes_an_sdist_and_a_wheel(dist):
    v = version("bundlekit")
    assert [p.name for p in dist.glob("*.tar.gz")] == [f"bundlekit-{v}.tar.gz"]
    assert wheel_of(dist).name.startswith(f"bundlekit-{v}-py3-none-any")


def test_the_wheel_holds_the_code_migrations_templates_and_static(dist):
    names = set(zipfile.ZipFile(wheel_of(dist)).namelist())
    # Every file of the packages: code, migrations, templates, static files, assets.
    tracked = subprocess.run(["git", "ls-files", "bundlekit", "django_adapter"], cwd=ROOT,
                             capture_output=True, text=True)
    if tracked.returncode == 0 and tracked.stdout.strip():
        wanted = tracked.stdout.split()
    else:  # not a git checkout (an unpacked sdist): every file but caches
        wanted = [p.relative_to(ROOT).as_posix()
                  for package in ("bundlekit", "django_adapter")
                  for p in (ROOT / package).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts]
    assert "django_adapter/migrations/0001_initial.py" in wanted
    assert sorted(set(wanted) - names) == []
    assert not any(n.startswith(("tests/", "bench/", "examples/")) for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel_of(dist)).read(entry_points).decode()
    assert "bundle = bundlekit.cli:main" in text and "django_adapter.cli:register" in text


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory):
    """A fresh venv with the wheel installed, and a function running its commands."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    work = tmp_path_factory.mktemp("work")
    # Nothing of this source tree may leak in (PYTHONPATH, an egg-info beside it).
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")}
    env.update(BUNDLEKIT_NO_PROGRESS="1", PATH=os.pathsep.join([str(venv / "bin"), env["PATH"]]))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=env,
                   cwd=work)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel_of(dist))], check=True, timeout=300, env=env, cwd=work)
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, env=env, cwd=work).stdout.strip()
    assert (Path(purelib) / "bundlekit" / "cli" / "app.py").is_file()
    deps = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(p)]
    Path(purelib, "zz-test-dependencies.pth").write_text("\n".join(deps) + "\n")

    def run(*args, stdin=None, cwd=work, code=0):
        result = subprocess.run(list(map(str, args)), cwd=cwd, env=env, input=stdin,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == code, (args, result.stdout[-2000:], result.stderr[-2000:])
        assert "Traceback" not in result.stderr
        return result

    return venv, work, run


def test_the_installed_wheel_is_what_runs(installed):
    venv, work, run = installed
    where = run("python", "-c", "import bundlekit, django_adapter; "
                "print(bundlekit.__file__); print(django_adapter.__file__)").stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    assert run("bundle", "--version").stdout == f"bundlekit {version('bundlekit')}\n"
    help_text = run("bundle", "--help").stdout
    for command in ("verify", "forward", "export", "import", "enqueue-existing"):
        assert command in help_text


def test_a_new_project_migrates_and_seals_and_verifies(installed):
    venv, work, run = installed
    run("python", "-m", "django", "startproject", "proj")
    project = work / "proj"
    with (project / "proj" / "settings.py").open("a") as settings:
        settings.write('\nINSTALLED_APPS += ["django_adapter"]\n')
    run("python", "manage.py", "migrate", "-v", "0", cwd=project)
    assert "export" in run("python", "manage.py", "bundle", "--help", cwd=project).stdout
    run("bundle", "keygen", "site-a", "--dir", "keys", cwd=project)
    run("bundle", "keygen", "central", "--dir", "keys", cwd=project)
    (project / "usb").mkdir()
    sealed = run("bundle", "seal", "-i", "keys/site-a.key", "--to", "keys/central.pub",
                 "--out", "usb", stdin=json.dumps({"id": 1, "model": "x.y"}) + "\n", cwd=project)
    (path,) = sealed.stdout.split()
    out = run("bundle", "verify", path, "--trust", "keys/site-a.pub", cwd=project).stdout
    assert out.startswith("OK") and "1 transaction, signed by trusted key" in out
