"""The layers of docs/architecture.md, held to the code: dependencies point downwards only
(cli -> server, dispatch, client, cloud, models -> pipeline -> engines), the engines never import
Pipecat, and the client and the cloud code never import torch or Pipecat."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "airvoice"
HEAVY = ("torch", "transformers", "pipecat", "vllm", "fastapi", "onnxruntime")
UPPER = ("pipeline", "server", "dispatch", "client", "cloud", "cli")

#: layer (a subpackage or module of airvoice) -> what it must not import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "engines": ("pipecat", "fastapi", *(f"airvoice.{name}" for name in UPPER)),
    "pipeline": tuple(f"airvoice.{name}" for name in UPPER if name != "pipeline"),
    "client": (*HEAVY, *(f"airvoice.{n}" for n in ("engines", "models", "testing", *UPPER[:2]))),
    "cloud": (*HEAVY, "airvoice.engines", "airvoice.pipeline", "airvoice.server", "airvoice.cli"),
    "models": (*HEAVY, "airvoice.engines", "airvoice.pipeline", "airvoice.server", "airvoice.cli"),
    "protocol.py": (*HEAVY, *(f"airvoice.{name}" for name in UPPER)),
    "server": ("airvoice.cli",),
}


def imported(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(layer: str) -> list[str]:
    root = PACKAGE / layer
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    assert files, f"no module in airvoice/{layer}"
    found = []
    for path in files:
        for name in imported(path):
            for banned in FORBIDDEN[layer]:
                if name == banned or name.startswith(f"{banned}."):
                    found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_dependencies_point_downwards(layer):
    assert violations(layer) == []


def test_the_rules_see_real_imports():
    """Non-vacuous: the layers do import what they are allowed to, where the scan looks."""
    assert "pipecat.pipeline.pipeline" in imported(PACKAGE / "pipeline" / "builder.py")
    assert any(n.startswith("airvoice.engines") for n in imported(PACKAGE / "server" / "app.py"))
    engine_imports = set().union(*(imported(p) for p in (PACKAGE / "engines").rglob("*.py")))
    assert "torch" in engine_imports
