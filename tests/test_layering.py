"""Dependencies point one way.

- ``bundlekit`` never imports Django: a middleman laptop or a non-Django producer
  must be able to seal and verify bundles with the core alone.  Every module of
  the package is imported (the package is walked, so a renamed or new module is
  checked too), and so is ``bundle``'s plugin loading.
- The core has no import circle.
- In the Django adapter, the apply engine does not import a face (the CLI, REST,
  management commands), and REST calls the inbox's operations instead of using
  its folder constants or private helpers.
- ``django_adapter.prep`` imports only Django and the standard library: capture
  and the apply engine both use it, and the engine imports capture.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import bundlekit

ROOT = Path(__file__).resolve().parents[1]
ADAPTER = ROOT / "django_adapter"


def core_modules() -> list[str]:
    names = ["bundlekit"]
    for info in pkgutil.walk_packages(bundlekit.__path__, "bundlekit."):
        if info.name != "bundlekit.__main__":
            names.append(info.name)
    return names


def test_the_walk_finds_the_core():
    names = core_modules()
    for expected in ("bundlekit.reader", "bundlekit.writer", "bundlekit.errors",
                     "bundlekit.cli.app", "bundlekit.cli.output", "bundlekit.age.stream"):
        assert expected in names


def test_no_core_module_imports_django():
    code = (
        "import importlib, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "    loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "    assert not loaded, (name, loaded)\n"
        "from bundlekit.cli.app import load_commands\n"
        "load_commands()  # bundle's plugins load without Django too\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not loaded, ('plugins', loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ static imports


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, *, top_level_only: bool = False) -> list[tuple[str, list[str]]]:
    """(module, names) for every import in ``path``; relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, [alias.name for alias in node.names]))
    return found


def sources(folder: Path, stem: str) -> list[Path]:
    """``stem.py`` or the package ``stem/`` in ``folder`` (whichever exists)."""
    files = sorted((folder / stem).rglob("*.py")) if (folder / stem).is_dir() else []
    if (folder / f"{stem}.py").exists():
        files.append(folder / f"{stem}.py")
    return files


def test_the_core_has_no_import_circle():
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "bundlekit").rglob("*.py"):
        name = module_name(path)
        targets = set()
        for module, names in imports(path, top_level_only=True):
            if not module.startswith("bundlekit"):
                continue
            targets.add(module)
            targets.update(f"{module}.{n}" for n in names)
        graph[name] = targets
    edges = {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}
    # A package's __init__ importing its own submodules is not a circle of concerns.
    for m in edges:
        edges[m] = {t for t in edges[m] if not t.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*trail[trail.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


FACES = ("django_adapter.cli", "django_adapter.rest", "django_adapter.management", "bundlekit.cli")


def test_apply_does_not_import_a_face():
    files = sources(ADAPTER, "apply")
    assert files, "django_adapter.apply has moved: update this test"
    bad = [
        (module_name(path), module)
        for path in files
        for module, _ in imports(path)
        if module.startswith(FACES)
    ]
    assert bad == []


def test_prep_imports_only_django_and_the_standard_library():
    found = imports(ADAPTER / "prep.py")
    assert found
    bad = [module for module, _ in found
           if module.split(".")[0] not in {*sys.stdlib_module_names, "__future__", "django"}]
    assert bad == []


def test_rest_calls_the_inbox_not_its_internals():
    """REST may call the inbox's functions and classes, not use its folder names or
    private helpers (the inbox, ``bundle import`` and REST are faces of one path)."""
    files = sorted((ADAPTER / "rest").rglob("*.py"))
    assert files
    bad = [
        (module_name(path), name)
        for path in files
        for module, names in imports(path)
        if module == "bundlekit.inbox"
        for name in names
        if name.startswith("_") or name.isupper()
    ]
    assert bad == []


def _module_imports(root):
    """module -> the django_adapter modules it imports at module level (what runs
    when it is imported; imports inside functions run later, when called)."""
    import ast
    from pathlib import Path

    package = Path(root) / "django_adapter"
    names = {}
    for path in package.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    graph = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text())
        is_pkg = path.name == "__init__.py"
        base = name if is_pkg else name.rsplit(".", 1)[0]
        found = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    up = base.split(".")
                    up = up[: len(up) - (node.level - 1)]
                    mod = ".".join(up + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in names]
                # "from package import module" needs the module, not what the
                # package's __init__ imports; "from module import name" needs module.
                targets = subs or [mod]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found.update(t for t in targets if t in names and t != name)
        graph[name] = found
    return graph


#: Circles known and owned elsewhere, as (importer, imported) edges left out of the
#: check; each entry is a bug to fix, then to delete from here.
KNOWN_CIRCLES: set = set()


def test_django_adapter_has_no_import_circle():
    """A reader follows the modules one way: no module imports, at import time,
    a module that imports it back (directly or round a longer loop)."""
    from pathlib import Path

    graph = _module_imports(Path(__file__).resolve().parents[1])
    for importer, imported in KNOWN_CIRCLES:
        graph.get(importer, set()).discard(imported)
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                loop = path[path.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(loop))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
