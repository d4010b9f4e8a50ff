"""The layout's rules, read from the source with ``ast`` (no TensorFlow): no import cycle among the
package's modules, apps/benchmarks/notebooks use only the public API, no function over 80 lines,
and no test of the model kind by string (the registry's task answers it)."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bigmodels"
PUBLIC_MODULES = ("bigmodels", "bigmodels.cli", "bigmodels.lite")
MAX_FUNCTION_LINES = 80
KIND_BY_STRING = (
    r"\bGENERATIVE_MODELS\b",
    r"""["']tokenizer["']\s+in\s+config\b""",
    r"""["']classifier_score["']\s+in\b""",
    r"""["']keras["']\s+in\s+report\b""",
    r"""["']drop_points["']\s+in\b""",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(module: str, name: str) -> str:
    """``from module import name``: the module ``module.name`` when there is one, else ``module``."""
    return f"{module}.{name}" if f"{module}.{name}" in MODULES else module


def imported_modules(tree: ast.AST, importer: str = "", is_package: bool = False) -> set[str]:
    """Every module ``tree`` imports, at the top or inside functions (relative imports resolved)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = importer.split(".") if is_package else importer.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found |= {resolve(base, alias.name) for alias in node.names}
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = imported_modules(tree, module, path.name == "__init__.py")
        graph[module] = {target for target in targets if target in MODULES and target != module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a, b, ..., a) per strongly connected group of modules (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while node not in group:
                group.add(stack.pop())
            on_stack.difference_update(group)
            if len(group) > 1:
                groups.append(group)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [shortest_cycle(graph, group) for group in groups]


def shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for target in sorted(graph[path[-1]] & group):
            if target == start:
                return path + [start]
            if target not in seen:
                seen.add(target)
                paths.append(path + [target])
    raise AssertionError(f"no cycle through {start}")


def test_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, (
        "import cycles among bigmodels modules (imports inside functions count):\n  "
        + "\n  ".join(" -> ".join(cycle) for cycle in cycles)
        + "\nMake the dependency one-way (apps -> public API -> workflows -> tasks -> "
        "models/data/training/convert): move the shared part into the lower module, or pass it in."
    )


def test_the_cycle_finder_sees_lazy_imports_and_packages():
    graph = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p"}, "q": {"p.a"}}
    assert find_cycles(graph) == [["p", "p.a", "p.b", "p"]]
    tree = ast.parse("def f():\n    from bigmodels.models import registry\n    from . import base\n")
    found = imported_modules(tree, "bigmodels.tasks.classification")
    assert {"bigmodels.models.registry", "bigmodels.tasks.base"} <= found


def names_listed(module: str, variable: str) -> set[str]:
    """The keys (dict) or items (list) of a module-level ``variable``, read from the source."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == variable for t in targets):
            return set(ast.literal_eval(node.value))
    return set()


def client_sources():
    """(label, source) of every app, benchmark and notebook code cell (magics dropped)."""
    for folder in ("apps", "benchmarks"):
        for path in sorted((ROOT / folder).glob("*.py")):
            yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for number, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                lines = source.splitlines()
                source = "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))
                yield f"{path.relative_to(ROOT)} cell {number}", source


def private_uses(label: str, source: str) -> list[str]:
    public = {
        "bigmodels": names_listed("bigmodels", "_PUBLIC") | {"__version__", "cli", "lite"},
        "bigmodels.cli": names_listed("bigmodels.cli", "__all__"),
        "bigmodels.lite": names_listed("bigmodels.lite", "__all__"),
    }
    tree = ast.parse(source, filename=label)
    problems = [
        f"{label}: imports {module}"
        for module in sorted(imported_modules(tree))
        if module.startswith("bigmodels.") and module not in PUBLIC_MODULES
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in public and not node.level:
            problems += [
                f"{label}: imports {alias.name} from {node.module}, which does not export it"
                for alias in node.names
                if alias.name not in public[node.module] and resolve(node.module, alias.name) == node.module
            ]
    uses = {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and is_bigmodels(node.value)
    }
    return problems + [
        f"{label}: uses bigmodels.{name}, which is not public" for name in sorted(uses - public["bigmodels"])
    ]


def is_bigmodels(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "bigmodels"


def test_apps_benchmarks_and_notebooks_use_only_the_public_api():
    problems = [problem for label, source in client_sources() for problem in private_uses(label, source)]
    assert not problems, (
        "apps, benchmarks and notebooks may use only bigmodels (its _PUBLIC names), bigmodels.cli "
        "and bigmodels.lite:\n  "
        + "\n  ".join(problems)
        + "\nImport the name from one of those; if it is missing, add it to bigmodels/__init__.py's "
        "_PUBLIC (or the __all__ of bigmodels/cli or bigmodels/lite)."
    )


def test_the_public_api_check_catches_private_imports():
    source = "import bigmodels\nfrom bigmodels.workflows.train import train_run\nbigmodels.runs.x()\n"
    problems = private_uses("app.py", source)
    assert any("imports bigmodels.workflows.train" in p for p in problems)
    assert any("bigmodels.runs" in p for p in problems)
    assert not private_uses(
        "app.py", "from bigmodels import train_run\nfrom bigmodels.lite import load_bundle\n"
    )


def test_no_function_over_80_lines():
    long_functions = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(
                        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"
                    )
    assert not long_functions, (
        f"functions over {MAX_FUNCTION_LINES} lines:\n  "
        + "\n  ".join(long_functions)
        + "\nSplit each by responsibility (one function per step, a task hook, a table of options)."
    )


def test_no_model_kind_tested_by_string():
    found = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "apps").glob("*.py")]):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if any(re.search(pattern, line) for pattern in KIND_BY_STRING):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, (
        "the model kind is tested by a name or a dict key:\n  "
        + "\n  ".join(found)
        + "\nAsk the task instead: bigmodels.task_of(config['model']) (or report['model']) and its hooks "
        "(training_summary, evaluation_lines, keras_line, export_columns, gate_failure_text, quality_key)."
    )


def test_bigmodels_cli_imports_without_tensorflow():
    """apps/predict.py and apps/benchmark.py import bigmodels.cli on devices without TensorFlow."""
    script = (
        "import sys\n"
        "for name in ('tensorflow', 'keras', 'keras_hub', 'tensorflow_text', 'tensorflow_datasets'):\n"
        "    sys.modules[name] = None  # any import of them now raises ImportError\n"
        "import bigmodels, bigmodels.cli, bigmodels.lite\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, (
        "importing bigmodels.cli (or bigmodels.lite) needs TensorFlow; import it inside the "
        f"function that uses it:\n{result.stderr}"
    )
