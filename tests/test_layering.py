"""The layers stated in vcodec/__init__.py hold: no module imports a higher layer, nor another package of
its own layer, so no import cycle between packages can come back unnoticed.

Imports are read from the source with ast, not executed: an import inside a function counts as much as
one at the top (a lazy import hides a dependency, it does not remove it).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

VCODEC = Path(__file__).resolve().parent.parent / "vcodec"
ROOT = ""  # vcodec/__init__.py itself: below every layer, as it imports nothing
_LAYER_LINE = re.compile(r"^\s*layer (\d+): (.+)$")


def declared_layers() -> dict[str, int]:
    """Package (or top-level module) name -> layer, from the list in vcodec/__init__.py's docstring."""
    docstring = ast.get_docstring(ast.parse((VCODEC / "__init__.py").read_text())) or ""
    layers: dict[str, int] = {}
    for line in docstring.splitlines():
        match = _LAYER_LINE.match(line)
        if match:
            for name in match.group(2).split():
                assert name not in layers, f"{name} is in two layers"
                layers[name] = int(match.group(1))
    return layers


def unit_of(module: str) -> str:
    """'vcodec.entropy.param_coder' -> 'entropy'; 'vcodec' -> ROOT."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def module_name(path: Path) -> str:
    relative = path.relative_to(VCODEC.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _from_target(base: str, name: str) -> str:
    """`from vcodec import decoder` imports the module vcodec.decoder, `from vcodec import __version__`
    only the root package."""
    if base == "vcodec" and ((VCODEC / f"{name}.py").exists() or (VCODEC / name).is_dir()):
        return f"vcodec.{name}"
    return base


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every vcodec module the source imports, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            found += [(node.lineno, _from_target(base, alias.name)) for alias in node.names]
    return [(line, name) for line, name in dict.fromkeys(found) if name == "vcodec" or name.startswith("vcodec.")]


def violations(source: str, module: str, is_package: bool, layers: dict[str, int]) -> list[str]:
    """What in `source` (the text of `module`) breaks the layers: imports of a higher layer or of a peer."""
    own = unit_of(module)
    if own != ROOT and own not in layers:
        return [f"{module}: its package {own!r} is in no layer"]
    problems = []
    for line, target in imported_modules(source, module, is_package):
        other = unit_of(target)
        if own == ROOT:
            if other != ROOT:
                problems.append(f"{module}:{line} imports {target}: the root package must import nothing")
        elif other in (own, ROOT):
            continue
        elif other not in layers:
            problems.append(f"{module}:{line} imports {target}, whose package {other!r} is in no layer")
        elif layers[other] >= layers[own]:
            relation = "a peer in layer" if layers[other] == layers[own] else "higher layer"
            problems.append(f"{module}:{line} imports {target} ({other}, {relation} {layers[other]}) "
                            f"from {own} (layer {layers[own]})")
    return problems


def _sources() -> list[Path]:
    return sorted(VCODEC.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    layers = declared_layers()
    assert {"types", "format", "model", "entropy", "bitstream", "decoder"} <= set(layers)
    units = {unit_of(module_name(path)) for path in _sources()} - {ROOT}
    assert not units - set(layers), f"packages in no layer of vcodec/__init__.py: {sorted(units - set(layers))}"
    assert set(layers.values()) == set(range(len(set(layers.values())))), "layers must be numbered 0, 1, 2, ..."


def test_no_module_imports_a_higher_layer_or_a_peer() -> None:
    layers = declared_layers()
    problems = []
    for path in _sources():
        problems += violations(path.read_text(), module_name(path), path.name == "__init__.py", layers)
    assert not problems, "imports against the layers of vcodec/__init__.py:\n" + "\n".join(problems)


LAYERS_FOR_CHECKS = {"format": 0, "shapes": 1, "model": 2, "entropy": 2, "bitstream": 3, "decoder": 4}


@pytest.mark.parametrize(("module", "source", "count"), [
    ("vcodec.entropy.param_coder", "from vcodec.model.arm import Arm", 1),  # a peer
    ("vcodec.model.arm", "def f():\n    from vcodec.bitstream import frame_header", 1),  # higher, lazy
    ("vcodec.shapes", "import vcodec.decoder", 1),
    ("vcodec.entropy.latent_coder", "from ..model import arm", 1),  # relative
    ("vcodec.model", "from . import arm\nfrom vcodec import decoder, __version__", 1),  # a package's __init__
    ("vcodec.decoder", "from vcodec.model.arm import Arm\nfrom vcodec.shapes import grid_sizes", 0),
    ("vcodec.entropy.tables", "from vcodec.entropy.constants import MEAN_FRAC_BITS\nfrom vcodec import __version__", 0),
    ("vcodec.model.arm", "from vcodec.nowhere import x", 1),  # a package in no layer
    ("vcodec", "from vcodec.format import MODULES", 1),  # the root
])
def test_the_check_finds_what_breaks_the_layers(module: str, source: str, count: int) -> None:
    is_package = module in ("vcodec", "vcodec.model")
    assert len(violations(source, module, is_package, LAYERS_FOR_CHECKS)) == count
