"""The shape of the code: the library's imports form no cycle and never reach streamlit."""

import ast
import os
import subprocess
import sys
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


def test_only_the_cluster_module_imports_ray_and_only_the_dispatcher_imports_it():
    importers = {path.stem for path in LIBRARY.glob("*.py") if "ray" in imports_of(path)[1]}
    assert importers == {"cluster"}
    users = {name for name, imports in import_graph().items() if "cluster" in imports}
    assert users == {"cli"}  # `python -m lenet dispatch`, inside its handler


def test_the_local_pool_trains_without_importing_ray(tmp_path):
    """What every test but tests/test_cluster.py runs: train a queued run as a local worker."""
    from conftest import make_dataset_dir

    data_dir = make_dataset_dir(tmp_path / "fmnist")
    code = f"""
import os, sys
from lenet import cli, experiments, worker
from lenet.runs import execute_run
from lenet.train import TrainConfig
from lenet.workspace import Workspace
from pathlib import Path
workspace = Workspace(Path({str(tmp_path / "home")!r}))
store = workspace.store
run_id = store.enqueue(TrainConfig(epochs=1, train_limit=100), data_dir={str(data_dir)!r})
assert store.claim_next(os.getpid()) == run_id
execute_run(workspace, run_id)
print(store.get_run(run_id).status, store.get_run(run_id).trained_on, "ray" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if k != "LENET_RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["finished", "local", "False"]
