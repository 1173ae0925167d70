"""xpbp's modules import each other one way: no cycle, not even under TYPE_CHECKING or
inside a function; and only backend.py imports CuPy, only distributed.py mpi4py."""

import ast
from pathlib import Path

import xpbp

PACKAGE = Path(xpbp.__file__).parent


def imports(path):
    """The xpbp modules a module imports, anywhere in it, and the top-level packages it imports."""
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                ours.add(node.module.split(".")[0])
            else:
                ours.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            theirs.update(alias.name.split(".")[0] for alias in node.names)
    return ours, theirs


def graph():
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: {m for m in imports(path)[0] if m in modules and m != name} for name, path in modules.items()}


def test_no_module_imports_one_that_imports_it_back():
    edges, state, cycles = graph(), {}, []  # state: 1 while a module's imports are being walked, 2 once done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == [], cycles[:5]


def test_the_graph_sees_the_imports_it_checks():
    edges = graph()  # the test above can fail: these edges exist, and a cycle of them would be found
    assert "backend" in edges["network"] and "network" in edges["sklearn"] and "files" in edges["mlp_checkpoints"]


def test_only_backend_imports_cupy_and_only_distributed_mpi4py():
    for path in PACKAGE.glob("*.py"):
        theirs = imports(path)[1]
        assert "cupy" not in theirs or path.stem in ("backend", "distributed"), path  # NCCL's bindings in distributed
        assert "mpi4py" not in theirs or path.stem == "distributed", path
