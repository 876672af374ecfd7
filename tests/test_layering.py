"""Imports point one way: leaf modules <- detectors and models <- orchestration <- front doors.

Every module under provenance/ and detectors/ is parsed (not imported) and every import in it,
function-local ones included, must point to its own layer or a lower one. A new module must be
given a layer here, by its exact name or by a package prefix, or this test fails and says where.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("provenance", "detectors")

LEAF, MODELS, ORCHESTRATION, FRONT_DOOR = range(4)
LAYER_NAMES = {LEAF: "leaf", MODELS: "detectors/models", ORCHESTRATION: "orchestration", FRONT_DOOR: "front door"}

# Exact module names first, then the longest matching package prefix ("provenance.c2pa" covers
# provenance.c2pa.reading). A package's own __init__ is the module named like the package.
LAYERS: dict[str, int] = {
    # leaf: no provenance/detectors imports above this line; image loading, registries, formats
    "provenance.registry": LEAF,
    "provenance.imageio": LEAF,
    "provenance.png_chunks": LEAF,  # checksum repair beneath imageio
    "provenance.once": LEAF,
    "provenance.assets": LEAF,  # non-image C2PA assets beside imageio
    "provenance.precision": LEAF,
    "provenance.markdown": LEAF,
    "provenance.files": LEAF,
    "provenance.errors": LEAF,
    "provenance.metrics": LEAF,
    "provenance.shipped": LEAF,
    "provenance.threads": LEAF,
    "provenance.allocator": LEAF,
    "provenance.onnx_int8": LEAF,  # int8 forms of exported graphs (CNN classifiers, learned mark)
    "provenance.c2pa": LEAF,
    "provenance.watermark": LEAF,
    "provenance.watermark.learned.training": MODELS,  # trains like our generators (shares their loop helpers)
    "provenance.watermark.learned.scorer_training": MODELS,  # distils registration's scorer (the same loop)
    "provenance.watermark.learned.export": MODELS,  # exports and quantises the networks (on the scorer's samples)
    "provenance.datasets.perturbations": LEAF,
    "provenance.datasets.layout": LEAF,
    "provenance.datasets.reading": LEAF,
    "provenance.generators.photos": LEAF,
    "provenance.generators.photo_packages": LEAF,
    # detectors, trained classifiers and our generator models
    "detectors": MODELS,
    "provenance.generators": MODELS,
    # orchestration: runs models over data, writes reports and cards
    "provenance.check": ORCHESTRATION,
    "provenance.workers": ORCHESTRATION,  # runs a Checker in worker processes
    "provenance.evaluation": ORCHESTRATION,
    "provenance.classifier_card": ORCHESTRATION,
    "provenance.detector_training": ORCHESTRATION,
    "provenance.corpus_detector": ORCHESTRATION,  # trains the spectral-corpus classifier on the public corpus
    "provenance.corpus_card": ORCHESTRATION,
    "provenance.corpus_cnn": ORCHESTRATION,  # trains the cnn-corpus classifier
    "provenance.early_stop": ORCHESTRATION,  # measures a tile classifier's early stop on the corpus
    "provenance.rendered_gate": ORCHESTRATION,  # trains the rendered-graphic gate on drawn graphics and the corpus
    "provenance.generators.model_card": ORCHESTRATION,
    "provenance.generation": ORCHESTRATION,
    "provenance.heatmap": ORCHESTRATION,
    "provenance.demo": ORCHESTRATION,
    "provenance.datasets": ORCHESTRATION,  # build, plan, card, verify (and the package facade)
    "provenance.engines": ORCHESTRATION,  # batch engines (Ray) that run the Checker
    # front doors: parse arguments or requests, call the library, format the answer
    "provenance": FRONT_DOOR,  # the package facade: the Python API's lazy entry points
    "provenance.cli": FRONT_DOOR,
    "provenance.commands": FRONT_DOOR,
    "provenance.service": FRONT_DOOR,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


MODULES = all_modules()


# Names that classify themselves only, never the modules below them (a new provenance/x.py must be
# given its own layer, not inherit the facade's).
EXACT_ONLY = {"provenance"}


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS and (prefix == name or prefix not in EXACT_ONLY):
            return LAYERS[prefix]
    return None


def imports_of(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of our packages, at any depth of the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from provenance import watermark`` imports the module provenance.watermark
                target = f"{base}.{alias.name}"
                found.append((node.lineno, target if target in MODULES else base))
    ours = [(line, target) for line, target in found if target.split(".")[0] in PACKAGES]
    return sorted(set(ours))


def test_every_module_has_a_layer():
    unknown = [name for name in MODULES if layer_of(name) is None]
    assert not unknown, (
        f"no import layer for {', '.join(unknown)}: add the module (or its package prefix) to LAYERS in "
        f"{Path(__file__).relative_to(ROOT)} as LEAF, MODELS, ORCHESTRATION or FRONT_DOOR")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    own = layer_of(name)
    if own is None:
        pytest.skip("unassigned; test_every_module_has_a_layer reports it")
    upward = [f"line {line}: {target} ({LAYER_NAMES[layer_of(target)]})"
              for line, target in imports_of(name, MODULES[name])
              if layer_of(target) is not None and layer_of(target) > own]
    assert not upward, f"{name} ({LAYER_NAMES[own]}) imports upward: " + "; ".join(upward)


def test_no_import_cycles():
    """Within a layer too: two modules that import each other (even inside functions) are one
    concept split in two. A package facade importing its own modules (registrations) is not a cycle."""
    graph = {name: {target for _, target in imports_of(name, path)
                    if target in MODULES and target != name and not target.startswith(name + ".")}
             for name, path in MODULES.items()}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_the_checker_sees_relative_and_function_local_imports(tmp_path):
    """The rule is only as good as the parser: a function-local relative import must be found."""
    module = ROOT / "provenance" / "datasets" / "reading.py"
    source = "def f():\n    from ..check import Checker\n    from . import build\n"
    fake = tmp_path / "reading.py"
    fake.write_text(source)
    found = {target for _, target in imports_of("provenance.datasets.reading", fake)}
    assert found == {"provenance.check", "provenance.datasets.build"}, found
    assert layer_of("provenance.check") > layer_of("provenance.datasets.reading") and module.is_file()
    assert layer_of("provenance.service.app") == FRONT_DOOR and layer_of("detectors.anything_new") == MODELS
    assert layer_of("provenance.anything_new") is None  # must be assigned, not inherit the facade's layer
