"""The house keeps its shape: dependencies run one way. Read from the
project's own imports (ast, nothing run): no runtime import cycle, the VM
core imports nothing from the front, trace replay nothing from either, and
the layers below (vmlab_fs, vmlab_swapdisk) nothing of vmlab."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"vmlab": "vmlab", "vmlab_fs": "fs", "vmlab_swapdisk": "swapdisk",
            "vmlab_scenarios": "demo"}


def modules() -> dict[str, Path]:
    """Import name -> file, for every module of the project."""
    out = {}
    for name, folder in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((name,) + parts)] = path
    return out


def _type_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:``."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    lines.add(inner.lineno)
    return lines


def imports(name: str, path: Path, known: set[str]) -> dict[str, bool]:
    """The project modules ``name`` imports -> True if only for type checking."""
    tree = ast.parse(path.read_text())
    typing_only = _type_only(tree)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: dict[str, bool] = {}
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out[t] = out.get(t, True) and node.lineno in typing_only
    return out


def graph(runtime_only: bool = True) -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {n: {t for t, typing in imports(n, p, known).items() if not (runtime_only and typing)}
            for n, p in mods.items()}


def _cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if m.startswith(n + ".") or n.startswith(m + "."):
                continue            # a package and its own modules
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None
    for n in sorted(g):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_runtime_import_cycle():
    assert _cycle(graph()) is None, " -> ".join(_cycle(graph()))


def _arrows(source: str, forbidden: tuple[str, ...], runtime_only: bool = False) -> list[str]:
    return [f"{a} -> {b}" for a, bs in graph(runtime_only).items() if a.startswith(source)
            for b in bs if b == "vmlab" and "vmlab" in forbidden or
            any(b == f or b.startswith(f + ".") for f in forbidden if f != "vmlab")]


def test_the_core_imports_nothing_from_the_front():
    """Type-only imports included: the core is below everything vmlab shows."""
    assert not _arrows("vmlab.core", ("vmlab", "vmlab.front", "vmlab.replay", "vmlab_scenarios"))


def test_trace_replay_stands_apart():
    """Replay shares the one policy interface with the core, and nothing else."""
    arrows = _arrows("vmlab.replay", ("vmlab", "vmlab.core", "vmlab.front", "vmlab_scenarios"))
    assert all(a.endswith((" -> vmlab.core.policy", " -> vmlab.core.registry")) for a in arrows), arrows


def test_the_real_machine_stands_on_the_core():
    """The real machine uses the core's frame table, policies, swap device and
    lab guard, and knows nothing of the front or of trace replay."""
    assert not _arrows("vmlab.real", ("vmlab", "vmlab.front", "vmlab.replay", "vmlab_scenarios"))
    uses = {b for a, bs in graph().items() if a.startswith("vmlab.real") for b in bs}
    assert {"vmlab.core.frame", "vmlab.core.registry", "vmlab.core.lab", "vmlab_swapdisk"} <= uses


def test_the_layers_below_know_nothing_of_vmlab():
    for low in ("vmlab_fs", "vmlab_swapdisk"):
        assert not _arrows(low, ("vmlab", "vmlab.core", "vmlab.front", "vmlab.replay",
                                 "vmlab_scenarios", "vmlab_fs" if low != "vmlab_fs" else "-"))


def test_the_reader_sees_the_whole_house():
    mods = modules()
    assert {"vmlab.core.fault", "vmlab.core.machine", "vmlab.front.cli", "vmlab.replay.traces",
            "vmlab_fs.labfs", "vmlab_swapdisk.disk"} <= set(mods)
    import vmlab
    assert set(vmlab.__all__) >= {"Machine", "Process", "VMError"}
    assert set(vmlab.__all__) >= {"RealMachine", "Policy"}
    # the core's face, and the real machine's beside it
    assert all(m.startswith(("vmlab.core.", "vmlab.real.")) for m in vmlab._PUBLIC.values())


def test_no_function_is_longer_than_50_lines():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 50:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, long


DATA_MODEL = {"vmlab.core.page", "vmlab.core.frame", "vmlab.core.filemap"}


def test_type_only_imports_only_between_data_model_classes():
    """A PTE names its frame and a frame its PTEs (a circle of types, no more)."""
    mods = modules()
    typing_only = [f"{n} -> {t}" for n, p in mods.items()
                   for t, typing in imports(n, p, set(mods)).items()
                   if typing and not (n in DATA_MODEL and t in DATA_MODEL)]
    assert not typing_only, typing_only


def test_the_fault_and_reclaim_paths_state_their_contracts():
    """xv6's way: every function opens with what it needs, guarantees and raises, in two lines or fewer."""
    missing = []
    for name in ("vmlab.core.fault", "vmlab.core.reclaim", "vmlab.core.mm"):
        for node in ast.walk(ast.parse(modules()[name].read_text())):
            if isinstance(node, ast.FunctionDef):
                doc = ast.get_docstring(node)
                if not doc or doc.split("\n\n")[0].count("\n") > 1:
                    missing.append(f"{name}.{node.name}")
    assert not missing, missing
