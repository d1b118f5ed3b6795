"""The package's shape: the backend contract, the compositions, and imports that flow one way."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

from npxception import compose
from npxception.backends import contract, cpu, reference

PACKAGE = Path(__file__).resolve().parents[1] / "npxception"


def _cuda_module():
    # Importing the cuda backend compiles nothing and needs no GPU (its kernels compile on launch).
    pytest.importorskip("numba.cuda")
    from npxception.backends import cuda

    return cuda


@pytest.mark.parametrize("which", ["numpy", "cpu", "cuda"])
def test_backend_implements_the_contract(which):
    be = {"numpy": lambda: reference, "cpu": lambda: cpu, "cuda": _cuda_module}[which]()
    assert be.name == which
    declared = {**contract.functions(contract.Backend), **contract.functions(contract.FusedOps)}
    for fn in contract.REQUIRED:
        assert callable(getattr(be, fn, None)), f"{which} lacks {fn}"
    # Every backend has every fused op (its own kernel or the composition of backends/fused.py),
    # so no caller asks which ones it has.
    assert sorted(be.__all__) == sorted(contract.exports(*contract.FUSED))
    for fn in [*contract.REQUIRED, *contract.FUSED]:
        ours = list(inspect.signature(getattr(be, fn)).parameters)
        assert ours == list(declared[fn].parameters), f"{which}.{fn}{ours} != contract {declared[fn]}"


def test_every_contract_function_documents_its_shapes():
    for protocol in (contract.Backend, contract.FusedOps):
        for fn in contract.functions(protocol):
            doc = inspect.getdoc(getattr(protocol, fn)) or ""
            assert len(doc) > 20, f"{fn} needs a docstring with its inputs and returns"


@pytest.mark.parametrize("training", [True, False])
def test_cpu_fused_batch_norm_relu_equals_its_definition(training):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 6, 7))
    gamma, beta = rng.standard_normal(7), rng.standard_normal(7)
    dy = rng.standard_normal(x.shape)
    if training:
        y, mean, var = cpu.batch_norm_relu_train(x, gamma, beta, 1e-3)
        y_def, mean_def, var_def = compose.batch_norm_relu_train(reference, x, gamma, beta, 1e-3)
        np.testing.assert_allclose(mean, mean_def, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(var, var_def, rtol=1e-13, atol=1e-14)
    else:
        mean, var = rng.standard_normal(7), rng.uniform(0.5, 2, 7)
        y = cpu.batch_norm_relu_infer(x, gamma, beta, mean, var, 1e-3)
        y_def = compose.batch_norm_relu_infer(reference, x, gamma, beta, mean, var, 1e-3)
    np.testing.assert_allclose(y, y_def, rtol=1e-13, atol=1e-14)
    assert (y > 0).any() and (y == 0).any()  # the ReLU is active on both sides
    grads = cpu.batch_norm_relu_backward(dy, x, y, gamma, mean, var, 1e-3, training)
    grads_def = compose.batch_norm_relu_backward(reference, dy, x, y_def, gamma, mean, var, 1e-3, training)
    for ours, ref in zip(grads, grads_def):
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("stride, padding", [((1, 1), (0, 0, 0, 0)), ((2, 2), (0, 1, 0, 1))])
def test_cpu_conv2d_filter_grad_equals_its_definition(stride, padding):
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 9, 8, 3)), rng.standard_normal((3, 3, 3, 4))
    dy = rng.standard_normal(cpu.conv2d(x, w, stride, padding, (1, 1)).shape)
    ours = cpu.conv2d_filter_grad(dy, x, w, stride, padding, (1, 1))
    np.testing.assert_array_equal(ours, cpu.conv2d_backward(dy, x, w, stride, padding, (1, 1))[1])
    definition = compose.conv2d_filter_grad(reference, dy, x, w, stride, padding, (1, 1))
    np.testing.assert_allclose(ours, definition, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("be", [reference, cpu], ids=["numpy", "cpu"])
def test_batch_norm_statistics_step_is_replaceable(be):
    """Normalising half a batch with the whole batch's statistics gives that half of the whole's y:
    the seam a synchronized batch norm plugs its cross-process reduction into."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 3, 3, 5))
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    mm, mv = np.zeros(5), np.ones(5)
    whole = compose.batch_norm_train(be, x, gamma, beta, mm, mv, 0.9, 1e-3)

    def global_statistics(be_, part):
        return whole.mean, whole.var

    half = compose.batch_norm_train(be, np.ascontiguousarray(x[:2]), gamma, beta, mm, mv, 0.9, 1e-3,
                                    statistics=global_statistics)
    np.testing.assert_allclose(half.y, whole.y[:2], rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(half.moving_mean, whole.moving_mean)
    local = compose.batch_norm_train(be, np.ascontiguousarray(x[:2]), gamma, beta, mm, mv, 0.9, 1e-3)
    assert not np.allclose(local.y, whole.y[:2])  # without the reducer the half uses its own stats


def test_shortcut_blocks_drive_the_builder():
    from npxception import Xception, XceptionConfig
    from npxception.models.config import SHORTCUT_BLOCKS

    model = Xception(XceptionConfig.tiny(middle_blocks=2), backend="numpy")
    names = {leaf.name for leaf in model.leaves()}
    assert sorted(int(n[5:-9]) for n in names if n.endswith("_shortcut")) == list(SHORTCUT_BLOCKS)
    assert {"block5_sepconv1", "block6_sepconv3"} <= names and "block7_sepconv1" not in names


# --------------------------------------------------------------------------- imports

# Each part of the package and its layer: a module may import from its own part or from a lower
# layer, never from a higher one. Data flows CLI -> (distributed) -> train -> data/models -> nn/ops -> compose ->
# backends; io, shapes and the small utilities sit where their importers need them.
LAYERS = {
    "__main__": 10, "cli": 9, "testing": 9,
    "distributed": 8,
    "train": 7,
    "data": 6, "models": 6, "opcheck": 6,
    "nn": 5, "ops": 5, "io": 5,
    "validate": 4, "gradcheck": 4, "compose": 4, "threads": 4,
    "backends": 2,
    "shapes": 1, "resources": 1, "preprocessing": 1,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every npxception module `path` imports (at any depth of the file), relative to the package."""
    here = _module_name(path)
    package = here.split(".") if path.name == "__init__.py" else here.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "npxception":
                target = node.module[len("npxception"):].lstrip(".")
            else:
                continue
            for alias in node.names:  # `from . import nn` names a module, `from .x import f` a symbol
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if (PACKAGE / sub.replace(".", "/")).exists()
                          or (PACKAGE / (sub.replace(".", "/") + ".py")).exists() else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "npxception":
                    found.add(alias.name[len("npxception"):].lstrip("."))
    return found - {here}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_imports_flow_down_the_layers():
    bad = []
    for module, targets in _graph().items():
        part = module.split(".")[0] if module else ""
        for target in targets:
            if target == "":
                bad.append(f"{module} imports the package root (import the module that defines it)")
                continue
            other = target.split(".")[0]
            if other == part:
                continue
            if part not in LAYERS or other not in LAYERS:
                missing = part if part not in LAYERS else other
                bad.append(f"{module} -> {target}: give '{missing}' a layer in LAYERS")
            elif LAYERS[other] >= LAYERS[part]:
                bad.append(f"{module} (layer {LAYERS[part]}) imports {target} (layer {LAYERS[other]})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _graph()

    def resolve(target):  # a symbol import names its module; a package import its __init__
        return target if target in graph else None

    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(filter(None, map(resolve, graph.get(node, ())))):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_import_reader_sees_every_kind_of_import():
    """`from ..x import f`, `from .. import nn` and imports inside functions all count as edges."""
    assert "backends" in _imports(PACKAGE / "nn" / "layer.py")           # from ..backends import get_backend
    model_edges = _imports(PACKAGE / "models" / "xception.py")
    assert {"nn", "backends", "models.config", "io.keras_h5"} <= model_edges  # the last one is inside a method
    assert "compose" in _imports(PACKAGE / "ops.py")                     # from . import compose


def test_every_file_of_the_package_reads_in_one_sitting():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"files over 400 lines: {long}"


@pytest.mark.parametrize("pool, stride, padding", [((3, 3), (2, 2), (0, 1, 0, 1)), ((2, 2), (1, 1), (1, 1, 1, 1)),
                                                   ((12, 12), (3, 3), (2, 2, 2, 2))])
def test_cpu_max_pool_with_taps_equals_its_definition(pool, stride, padding):
    rng = np.random.default_rng(7)
    x = np.round(rng.standard_normal((2, 19, 17, 70)), 1)  # rounded: many ties
    x[0, 3:9, 2:8, 5] = np.nan
    x[1, :, :, 6] = -np.inf  # windows with no cell above -inf: tap 0, maybe a padded one
    x[1, 4, 4, 7] = np.inf
    y, taps = cpu.max_pool2d_with_taps(x, pool, stride, padding)
    assert taps.dtype == (np.int8 if pool[0] * pool[1] <= 127 else np.int32)
    assert taps.min() >= 0 and taps.max() < pool[0] * pool[1]
    np.testing.assert_array_equal(y, cpu.max_pool2d(x, pool, stride, padding))
    np.testing.assert_array_equal(y, reference.max_pool2d(x, pool, stride, padding))
    dy = rng.standard_normal(y.shape)
    dx = cpu.max_pool2d_backward_taps(dy, taps, x.shape, pool, stride, padding)
    np.testing.assert_array_equal(dx, cpu.max_pool2d_backward(dy, x, pool, stride, padding))
    np.testing.assert_allclose(dx, reference.max_pool2d_backward(dy, x, pool, stride, padding),
                               rtol=1e-15, atol=1e-15)
