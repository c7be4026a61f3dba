"""The shape of the code: the library's imports form no cycle and never reach streamlit."""

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parent.parent / "lenet"


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(lenet modules, top-level outside packages) that a module imports, at any depth of its code:
    an import inside a function closes a cycle just as well as one at the top."""
    local, outside = set(), set()
    modules = {p.stem for p in LIBRARY.glob("*.py")}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                local.add(node.module.split(".")[0])
            else:  # from . import artifacts, data
                local.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            if node.module.split(".")[0] == "lenet":
                parts = node.module.split(".")
                local.add(parts[1] if len(parts) > 1 else "__init__")
            else:
                outside.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
    return local, outside


def import_graph() -> dict[str, set[str]]:
    return {path.stem: imports_of(path)[0] - {path.stem} for path in LIBRARY.glob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting, done = [], set()

    def visit(node):
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for dependency in sorted(graph.get(node, ())):
            cycle = visit(dependency)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_library_has_no_import_cycle():
    graph = import_graph()
    assert {"train", "store", "runs", "workspace", "worker"} <= set(graph)
    assert graph["runs"] >= {"train", "store", "artifacts"}  # the parser sees real imports
    assert find_cycle(graph) is None


def test_the_library_never_imports_streamlit():
    for path in LIBRARY.glob("*.py"):
        assert "streamlit" not in imports_of(path)[1], path.name
