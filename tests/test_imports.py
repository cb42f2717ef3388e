"""Every module of reflip imports on its own, and no two modules import each other, not even
through a function-local import (a cycle that is harmless today because its back-edge runs
late breaks the day someone moves that import to the top)."""
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reflip"
# Third-party packages some modules need and the test environment may lack (GPU kernels,
# framework adapters): a module failing on one of these is reported as skipped, not broken.
OPTIONAL = {"cupy", "cupyx", "torch", "jax", "jaxlib", "matplotlib", "scipy", "ot"}


def _modules():
    """``{module name: path}`` of every module and package of reflip."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()

# Run in one interpreter: before each module, every reflip module is dropped from sys.modules,
# so the module is imported with nothing of reflip loaded (third-party packages stay cached,
# which keeps this fast).
_ISOLATED = """
import importlib, json, sys, traceback
names = json.loads(sys.argv[1])
optional = set(json.loads(sys.argv[2]))
results = {}
for name in names:
    for loaded in [m for m in sys.modules if m == "reflip" or m.startswith("reflip.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
        results[name] = "ok"
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        results[name] = ("optional " + root) if root in optional else traceback.format_exc(limit=3)
    except Exception:
        results[name] = traceback.format_exc(limit=3)
print(json.dumps(results))
"""


def test_every_module_imports_in_isolation():
    # ``__main__`` modules run the program when imported (``python -m reflip``): not imported here.
    names = sorted(name for name in MODULES if not name.endswith(".__main__"))
    proc = subprocess.run([sys.executable, "-c", _ISOLATED, json.dumps(names), json.dumps(sorted(OPTIONAL))],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    broken = {name: text for name, text in results.items() if text != "ok" and not text.startswith("optional ")}
    assert not broken, "\n\n".join(f"{name}:\n{text}" for name, text in broken.items())
    assert sum(text == "ok" for text in results.values()) >= len(MODULES) // 2


def _resolve(module, path, level, target):
    """The absolute name of a relative import ``from <level dots><target> import ...`` written
    in ``module`` (whose file is ``path``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    parts = package.split(".")
    base = parts[: len(parts) - level + 1]
    return ".".join(base + ([target] if target else []))


def import_graph():
    """``{module: {modules it imports}}`` over reflip's modules, from every import statement
    (function-local ones included). ``from package import name`` is an edge to the submodule
    ``package.name`` when there is one, else to the package itself."""
    graph = {}
    for module, path in MODULES.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path, node.level, node.module) if node.level else (node.module or "")
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                           for alias in node.names]
            else:
                continue
            for target in targets:
                # `import reflip.a.b` imports the deepest reflip module it names.
                while target and target not in MODULES:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def cycles(graph):
    """The strongly connected components of ``graph`` with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_local_and_relative_imports():
    graph = import_graph()
    # audit/adapter.py imports the diagnosis at the top; audit/projections.py imports the adapter
    # inside a check; the strategies package imports its submodules.
    assert "reflip.audit.diagnose" in graph["reflip.audit.adapter"]
    assert "reflip.audit.adapter" in graph["reflip.audit.projections"]
    assert "reflip.testing.strategies.groupsort" in graph["reflip.testing.strategies"]


def test_no_import_cycle():
    found = cycles(import_graph())
    graph = import_graph()

    def witness(component):
        """A shortest cycle through the component's first module, as a path (for the message)."""
        start = component[0]
        parent, frontier = {start: None}, [start]
        while frontier:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w == start:
                        path = [v]
                        while parent[path[-1]] is not None:
                            path.append(parent[path[-1]])
                        return " -> ".join(list(reversed(path)) + [start])
                    if w in component and w not in parent:
                        parent[w] = v
                        nxt.append(w)
            frontier = nxt
        return " <-> ".join(component)

    assert not found, "import cycles:\n" + "\n".join(witness(c) for c in found)
