"""The package's structure: no import cycle in appliance/, no import that runs up the layers, and the
built-in experiences found through entry points, not imported.

Every module of appliance/ is parsed (never imported): its imports of appliance modules, at module
level and inside functions, are the edges; imports under ``if TYPE_CHECKING:`` are not (they never
run).  ``from appliance.x import y`` is an edge to ``appliance.x.y`` when that is a module, else to
``appliance.x``.  A module's layer is given by the longest prefix of LAYERS that names it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "appliance"

#: The layers, lowest first.  A layer holds one or more groups: a module may import its own group and
#: any group of a lower layer, never a higher layer nor a sibling group of its own layer (siblings talk
#: through a protocol the upper layer wires, as fleet.screen.Screen does for the kiosk).  Patterns are
#: module names; a pattern names the module and everything under it, and the longest pattern wins.
LAYERS: list[dict[str, list[str]]] = [
    # Basics that know nothing of the device: errors, files, slots, workers, the event bus, stats, the
    # exit statuses systemd acts on, and the fleet's wire names (a leaf config checks a prefix against).
    {"basics": ["appliance", "appliance.errors", "appliance.atomicfile", "appliance.slot", "appliance.worker",
                "appliance.digest", "appliance.boxes", "appliance.colour", "appliance.boundedjson", "appliance.tomlfile", "appliance.tomlwrite",
                "appliance.identity", "appliance.stats", "appliance.alerts", "appliance.events",
                "appliance.readiness", "appliance.media", "appliance.configtrial", "appliance.service.status",
                "appliance.fleet.topics"]},
    # The platform: frames in, tensors run, the daemon's life under systemd, photos to S3 and to CUPS.
    # None knows another.
    {"sources": ["appliance.sources"], "inference": ["appliance.inference"], "service": ["appliance.service"],
     "share": ["appliance.share"], "printing": ["appliance.printing"]},
    {"perception": ["appliance.perception"]},
    # The experience API third parties write against (its test kit sits higher: it uses a real layout).
    {"experience": ["appliance.experience"]},
    # Bundles: a campaign's content, its experiences' assets validated through the registry.
    {"content": ["appliance.content"]},
    {"render": ["appliance.render"]},
    # The photo booth's still path: a campaign's world, the shopper and the star composed at print size.
    {"photo": ["appliance.photo"]},
    # The configuration: the schema of every part below, checked as a whole.
    {"config": ["appliance.config"]},
    # Campaigns (signed desired state in, a bundle out) and the fleet link: siblings, wired by fleet.runtime.
    {"campaigns": ["appliance.campaigns"],
     "link": ["appliance.fleet.link", "appliance.fleet.connect_failure", "appliance.fleet.counter"]},
    # The checks run before start and on a set-config (they open the link and the source to test them).
    {"preflight": ["appliance.preflight"]},
    # The screen and the fleet side: siblings (the fleet serves the kiosk through fleet.screen.Screen).
    {"kiosk": ["appliance.kiosk"], "fleet": ["appliance.fleet"],
     "testkit": ["appliance.experience.testkit"]},
    # The built-in experiences: plug-ins on the API (PLUGIN_MAY_IMPORT says what they may use).
    {"experiences": ["appliance.experiences"]},
    # The composition root and the device's commands beside the daemon.
    {"compose": ["appliance.compose"],
     "commands": ["appliance.analyze", "appliance.evaluate", "appliance.bench", "appliance.doctor",
                  "appliance.photo.command"]},
    # Entry points: the device CLI, and the leaves the device runtime never imports: the operator's
    # tools (ops/) and the technician's (tools/).
    {"cli": ["appliance.cli", "appliance.__main__"], "ops": ["appliance.ops"], "tools": ["appliance.tools"]},
    # The operator console: a web application above the operator's tools (it signs, pushes and reads with them).
    {"console": ["appliance.console"]},
]

#: What a built-in experience may import: the API and the basics, like any third party's.
PLUGIN_MAY_IMPORT = ("experience", "experiences", "basics")

#: Who may import the built-in experiences (everyone else finds them through entry points): the composition
#: root, and the operator's tools, which prepare the built-ins' campaign tables (star-pose checks a pose with
#: the pose game's own scoring).
EXPERIENCES = "appliance.experiences"
MAY_IMPORT_EXPERIENCES = (EXPERIENCES, "appliance.compose", "appliance.ops")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in path.parts}


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """(dotted name, line) of every import that runs: TYPE_CHECKING blocks are left out."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child.test):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import):
                yield from ((alias.name, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")[: len(module.split(".")) - child.level + (1 if is_package else 0)]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                yield source, child.lineno
                yield from ((f"{source}.{alias.name}", child.lineno) for alias in child.names)
            stack.append(child)


def import_graph() -> dict[str, dict[str, int]]:
    """module → {imported appliance module: line of the import}."""
    known = modules()
    graph: dict[str, dict[str, int]] = {}
    for module, path in known.items():
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name, line in _imported_names(tree, module, path.name == "__init__.py"):
            if name in known and name != module:
                edges.setdefault(name, line)
        graph[module] = edges
    return graph


def group_of(module: str) -> tuple[int, str]:
    """(layer index, group name) of ``module``: the longest pattern of LAYERS that names it."""
    best: tuple[int, int, str] | None = None
    for index, layer in enumerate(LAYERS):
        for group, patterns in layer.items():
            for pattern in patterns:
                if (module == pattern or module.startswith(pattern + ".")) and (best is None or len(pattern) > best[0]):
                    best = (len(pattern), index, group)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_structure.py")
    return best[1], best[2]


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def violations(graph: dict[str, dict[str, int]]) -> dict[tuple[str, str], str]:
    """Every edge that breaks a rule, with the reason."""
    broken: dict[tuple[str, str], str] = {}
    for module, edges in graph.items():
        layer, group = group_of(module)
        for target, line in edges.items():
            target_layer, target_group = group_of(target)
            where = f"{module}:{line} imports {target}"
            if target_layer > layer:
                broken[(module, target)] = f"{where}: up the layers ({group} below {target_group})"
            elif target_layer == layer and target_group != group:
                broken[(module, target)] = f"{where}: sibling groups {group} and {target_group}"
            elif group == "experiences" and target_group not in PLUGIN_MAY_IMPORT:
                broken[(module, target)] = f"{where}: a built-in experience uses more than the experience API"
            if (target == EXPERIENCES or target.startswith(EXPERIENCES + ".")) and not any(
                    module == owner or module.startswith(owner + ".") for owner in MAY_IMPORT_EXPERIENCES):
                broken[(module, target)] = f"{where}: the built-in experiences are found through entry points"
    return broken


@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, int]]:
    return import_graph()


def test_no_import_cycle_in_the_package(graph: dict[str, dict[str, int]]) -> None:
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" ↔ ".join(component) for component in found)


def test_every_module_has_a_layer(graph: dict[str, dict[str, int]]) -> None:
    for module in graph:
        group_of(module)


def test_no_import_runs_up_the_layers_or_across_siblings(graph: dict[str, dict[str, int]]) -> None:
    broken = sorted(violations(graph).values())
    assert not broken, "imports against the layers:\n" + "\n".join(broken)


def test_the_checks_catch_a_cycle_an_upward_import_and_a_built_in_imported() -> None:
    graph = {"appliance.kiosk.app": {"appliance.fleet.runtime": 1, "appliance.experiences.menu": 2},
             "appliance.fleet.runtime": {"appliance.kiosk.app": 3}, "appliance.errors": {"appliance.render": 4},
             "appliance.render": {}, "appliance.experiences.menu": {"appliance.kiosk.app": 5}}
    assert cycles(graph) == [["appliance.experiences.menu", "appliance.fleet.runtime", "appliance.kiosk.app"]]
    broken = violations(graph)
    assert "sibling groups kiosk and fleet" in broken[("appliance.kiosk.app", "appliance.fleet.runtime")]
    assert "up the layers" in broken[("appliance.errors", "appliance.render")]
    assert "entry points" in broken[("appliance.kiosk.app", "appliance.experiences.menu")]
    assert "experience API" in broken[("appliance.experiences.menu", "appliance.kiosk.app")]
