"""The import graph and the facts spelled once, checked from the source (AST, nothing imported).

* No cycle among the module-level imports of ``ascl_env``, ``ascl_env_verifiers`` and
  ``verl_recipes`` (imports inside functions are lazy and allowed; ``if TYPE_CHECKING:`` blocks
  are not imports at run time).
* The layers below hold for every import, lazy ones included.
* The outcome's field lists are spelled in ``ascl_env/outcome.py`` only, and ``<tool_call>`` text is
  written by ``ascl_env.turns.write_call`` only.
"""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest

from ascl_env.outcome import EpisodeOutcome

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ascl_env", "ascl_env_verifiers", "verl_recipes")
SOURCE_FOLDERS = (*PACKAGES, "benchmarks", "examples", "scripts")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path for package in PACKAGES for path in (REPO / package).rglob("*.py")
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(body: list[ast.stmt], top_level: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements run when the module (``top_level``) or any code in it runs."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            found.extend(_imports(node.orelse, top_level))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            if not top_level:
                found.extend(_imports(node.body, top_level))
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    found.extend(_imports(children, top_level))
    return found


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The project modules an import statement loads (``from pkg import sub`` loads ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        package = module.split(".")
        if MODULES[module].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}


def _dependencies(module: str, top_level: bool) -> set[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    deps: set[str] = set()
    for node in _imports(tree.body, top_level):
        deps |= _targets(module, node)
    deps.discard(module)
    return deps


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_at_module_level():
    graph = {
        module: {d for d in _dependencies(module, top_level=True) if d in MODULES}
        for module in MODULES
    }
    assert _find_cycle(graph) is None


# What a layer may import from the project, lazy imports included. A prefix allows a package.
LAYERS = {
    # what a turn is: below everything
    "ascl_env.turns": (),
    # the tool: its name, schema, errors (the retriever only for type hints)
    "ascl_env.lookup": ("ascl_env.turns",),
    # the judges sit below the tool, the env and the tasks
    "ascl_env.judges": (
        "ascl_env.judges",
        "ascl_env.retrieval",  # the harm head's BM25 features (a layer below: rules, search)
        "ascl_env.rules",
        "ascl_env.turns",
        "ascl_env.openai_compat",
        "ascl_env.errors",
        "ascl_env._unique",
    ),
}


def _allowed(target: str, allowed: tuple[str, ...]) -> bool:
    return any(target == a or target.startswith(f"{a}.") for a in allowed)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_layer_imports_only_what_is_below_it(layer):
    modules = [m for m in MODULES if m == layer or m.startswith(f"{layer}.")]
    assert modules, layer
    upward = {
        (module, dep)
        for module in modules
        for dep in _dependencies(module, top_level=False)
        if dep.split(".")[0] in PACKAGES and not _allowed(dep, LAYERS[layer])
    }
    assert not upward


def test_the_packages_import_nothing_above_them():
    rules = [
        # the env package never imports the verl recipes or the verifiers shim
        ("ascl_env", ("verl_recipes", "ascl_env_verifiers"), ()),
        # only the harness imports the harness
        ("ascl_env", ("ascl_env.bench",), ("ascl_env.bench",)),
        # production verl code never imports the CPU harness (verl_recipes.compat holds the
        # patch every verl process needs)
        ("verl_recipes", ("verl_recipes.cpu",), ("verl_recipes.cpu",)),
    ]
    found = []
    for package, forbidden, exempt in rules:
        for module in MODULES:
            if not _allowed(module, (package,)) or _allowed(module, exempt):
                continue
            for dep in _dependencies(module, top_level=False):
                if _allowed(dep, forbidden):
                    found.append((module, dep))
    assert not found


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that are not docstrings or bare string statements."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bare = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in bare
    ]


def test_verl_production_code_names_no_cpu_module():
    # plugin.py imports its registration modules by name: no string may name the CPU harness.
    found = [
        (str(path.relative_to(REPO)), line)
        for path in (REPO / "verl_recipes").rglob("*.py")
        if "cpu" not in path.relative_to(REPO / "verl_recipes").parts
        for line, text in _code_strings(path)
        if text.startswith("verl_recipes.cpu")
    ]
    assert not found


# Where "<tool_call>" may appear in code (docstrings aside): the turns module writes and reads
# calls; the tiny offline Qwen2's chat template renders calls and registers the tag as a token,
# as Qwen's own template does.
CALL_TEXT_ALLOWED = {
    "ascl_env/turns.py",
    "ascl_env/bench/models.py",
}


def test_tool_call_text_is_written_by_the_turns_module_only():
    found = {
        str(path.relative_to(REPO))
        for folder in SOURCE_FOLDERS
        if (REPO / folder).is_dir()
        for path in (REPO / folder).rglob("*.py")
        if any("<tool_call>" in text.lower() for _, text in _code_strings(path))
    }
    assert found <= CALL_TEXT_ALLOWED, sorted(found - CALL_TEXT_ALLOWED)
    assert "ascl_env/turns.py" in found


OUTCOME_NAMES = {f.name for f in fields(EpisodeOutcome)}


def _spelled_outcome_lists(path: Path) -> list[int]:
    """Lines of tuple, list or set literals made of 4 or more outcome field names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 4:
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            if all(v in OUTCOME_NAMES for v in values):
                lines.append(node.lineno)
    return lines


def test_outcome_field_lists_are_spelled_in_outcome_py_only():
    found = {
        str(path.relative_to(REPO)): lines
        for folder in (*SOURCE_FOLDERS, "tests")
        if (REPO / folder).is_dir()
        for path in (REPO / folder).rglob("*.py")
        if path.name != "outcome.py" and (lines := _spelled_outcome_lists(path))
    }
    assert not found
    assert _spelled_outcome_lists(REPO / "ascl_env" / "outcome.py")  # the check sees them


# ----------------------------------------------------------------- docs/architecture.md's table

_ROW = re.compile(r"^\| (\d) \| `([\w.]+)` \|", re.MULTILINE)


def _documented_layers() -> dict[str, int]:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    return {module: int(layer) for layer, module in _ROW.findall(text)}


def test_the_architecture_table_lists_every_module_and_nothing_else():
    documented = _documented_layers()
    assert sorted(set(MODULES) - set(documented)) == [], "modules missing from the table"
    assert sorted(set(documented) - set(MODULES)) == [], "the table names modules that are gone"


def test_no_import_goes_up_a_documented_layer():
    layers = _documented_layers()
    upward = sorted(
        (f"{module} (layer {layers[module]})", f"{dep} (layer {layers[dep]})")
        for module in MODULES
        for dep in _dependencies(module, top_level=False)
        if dep in layers and module in layers and layers[dep] > layers[module]
    )
    assert upward == []


def test_no_import_cycle_with_lazy_imports_either():
    graph = {
        module: {d for d in _dependencies(module, top_level=False) if d in MODULES}
        for module in MODULES
    }
    assert _find_cycle(graph) is None


def test_the_table_reader_reads_the_rows():
    # the check above is only as good as the parse: a row for a known module must be read
    layers = _documented_layers()
    assert layers["ascl_env.turns"] == 0 and layers["ascl_env.bench.cli"] == 5
    assert len(layers) >= 80


def _top_level_names(module: str) -> set[str] | None:
    """Names a module defines at top level, or ``None`` when it resolves names dynamically."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        names.add(leaf.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return None if "__getattr__" in names else names


def test_every_project_import_names_something_that_exists():
    # lazy imports run only when their function does: a renamed constant must fail here, not in
    # a user's preflight check
    missing = []
    for module in MODULES:
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        for node in _imports(tree.body, top_level=False):
            if not isinstance(node, ast.ImportFrom) or node.level:
                continue
            base = node.module or ""
            if base not in MODULES:
                continue
            defined = _top_level_names(base)
            for alias in node.names:
                if alias.name == "*" or f"{base}.{alias.name}" in MODULES or defined is None:
                    continue
                if alias.name not in defined:
                    missing.append(f"{module}: from {base} import {alias.name}")
    assert missing == []
