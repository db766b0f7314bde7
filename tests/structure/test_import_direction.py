"""The layers of mltf import in one direction only (README, "Layout").

Every ``import`` and ``from ... import`` of every module under ``mltf/`` and
``pipelines/`` (inside functions too) is read with ``ast``; an edge from a
lower layer to a higher one, or between two packages of one layer that are
not allowed to see each other, fails with the file and line.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Lowest first. A module may import its own layer's allowed peers and any
# lower layer; the CLIs (top) may import everything.
LAYERS = [
    ("utils", ["mltf.utils"]),
    ("data", ["mltf.data"]),
    ("pipelines", ["pipelines"]),
    ("core", ["mltf.core", "mltf.metrics", "mltf.backbones", "mltf.losses",
              "mltf.efficientnet_lite"]),
    ("models", ["mltf.models", "mltf.inference", "mltf.decoding", "mltf.decoding_graph"]),
    ("methods", ["mltf.methods", "mltf.wgan", "mltf.retdm"]),
    ("training", ["mltf.training"]),
    ("cli", ["mltf.train", "mltf.evaluate", "mltf.predict", "mltf.export", "mltf.decode",
             "pipelines.show"]),
]
# Packages of one layer that must not import each other (each may import
# the lower layers): the metrics and backbones do not know each other.
PEERS_APART = {("mltf.metrics", "mltf.backbones"), ("mltf.backbones", "mltf.metrics"),
               ("mltf.core", "mltf.backbones"),
               ("mltf.core", "mltf.metrics")}


def _owner(module):
    """(layer index, package prefix) of a dotted module name, most specific first."""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (index, prefix)
    return best


def _modules(root=ROOT):
    for top in ("mltf", "pipelines"):
        for folder, _, files in os.walk(os.path.join(root, top)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    rel = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                    yield path, rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _imports(path, module):
    tree = ast.parse(open(path).read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            yield node.lineno, base
            for alias in node.names:  # `from mltf import metrics` names a module
                yield node.lineno, f"{base}.{alias.name}"


def edges(root=ROOT):
    for path, module in _modules(root):
        src = _owner(module)
        if src is None:
            continue
        for line, target in _imports(path, module):
            dst = _owner(target)
            if dst is not None:
                yield os.path.relpath(path, root), line, module, src, target, dst


def violations(root=ROOT):
    bad = []
    for path, line, module, (src_layer, src_pkg), target, (dst_layer, dst_pkg) in edges(root):
        if src_pkg == dst_pkg:
            continue
        if dst_layer > src_layer or (src_pkg, dst_pkg) in PEERS_APART:
            bad.append(f"{path}:{line}: {module} ({LAYERS[src_layer][0]}) imports "
                       f"{target} ({LAYERS[dst_layer][0]})")
    return bad


def test_every_module_has_a_layer():
    orphans = [m for _, m in _modules() if _owner(m) is None and m not in ("mltf",)]
    assert orphans == []


def test_imports_run_one_way():
    bad = violations()
    assert bad == [], "imports against the layering:\n" + "\n".join(bad)


def test_the_checker_sees_an_edge_against_the_direction(tmp_path):
    """The test can fail: a lower module importing a higher one, even inside
    a function and by a relative import, is reported with file and line."""
    (tmp_path / "mltf" / "data").mkdir(parents=True)
    (tmp_path / "mltf" / "backbones").mkdir()
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "mltf" / "data" / "bad.py").write_text(
        "import os\n\n\ndef f():\n    from mltf.training import trainer\n")
    (tmp_path / "mltf" / "backbones" / "peer.py").write_text("from ..metrics import ranking\n")
    (tmp_path / "mltf" / "data" / "fine.py").write_text("from mltf.utils import sizes\n")
    found = sorted(violations(str(tmp_path)))
    assert found == [
        "mltf/backbones/peer.py:1: mltf.backbones.peer (core) imports mltf.metrics (core)",
        "mltf/backbones/peer.py:1: mltf.backbones.peer (core) imports mltf.metrics.ranking (core)",
        "mltf/data/bad.py:5: mltf.data.bad (data) imports mltf.training (training)",
        "mltf/data/bad.py:5: mltf.data.bad (data) imports mltf.training.trainer (training)"]


@pytest.mark.parametrize("package", ["mltf"])
def test_no_module_over_400_lines(package):
    long = []
    for path, module in _modules():
        if module.startswith(package):
            n = sum(1 for _ in open(path))
            if n > 400:
                long.append(f"{module}: {n} lines")
    assert long == []
