"""Which answers the tests grade, and what an answer may use.

`answers(notebook)` picks the module to grade: yours (`exercises/`) or, with NPXCEPTION_SOLUTIONS=1,
the solutions. The rest reads an answer's source, because a check that compares only results is
passed by a one-line call to the project's own implementation:

* `audit` refuses an answer that imports or calls `npxception.ops`, the backends, the layers, the
  trainer's optimizers, the solutions or the checks themselves, directly or through a helper of its
  own module, except for a short list of helpers the exercise allows;
* `prange_loops`, `races`, `numba_parallel`, `prange_bounds` and `calls_in_prange` look at a Numba
  answer's loops (notebooks 3 and 9);
* `kernel_function`, `attribute_chain` and `launch_counts` serve the CUDA checks (notebook 4).

None of this is a sandbox: it stops the shortcuts a student could take by accident or in a
hurry, and says why. Every refusal raises AssertionError, like a wrong result.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import math
import os
import textwrap
import threading
import types
from collections import defaultdict

# What an answer may not reach: each of these computes the exercise's result for it.
FORBIDDEN = ("npxception.ops", "npxception.backends", "npxception.nn", "npxception.compose",
             "npxception.train", "npxception.distributed", "solutions", "exercises.checks", "exercises.grading")
# Ways to reach the modules above without naming them; no exercise needs any of them.
EVASIVE = {"__import__", "importlib", "exec", "eval", "compile", "globals", "vars", "getattr", "sys",
           "builtins"}


def answers(notebook: str) -> types.ModuleType:
    """The module of answers for `notebook` ("nb01", "nb02", ...)."""
    return importlib.import_module(f"{'solutions' if solutions_mode() else 'exercises'}.{notebook}")


def solutions_mode() -> bool:
    """True when the tests grade tutorials/solutions/ (NPXCEPTION_SOLUTIONS=1): only then may an
    answer live in a `solutions` module."""
    return os.environ.get("NPXCEPTION_SOLUTIONS") == "1"


def refuse(name: str, why: str) -> None:
    print(f"{name}: REFUSED: {why}")
    raise AssertionError(f"{name}: {why}")


def python_function(fn):
    """The plain Python function behind `fn`: a Numba dispatcher's or CUDA kernel's `py_func`."""
    inner = getattr(fn, "py_func", None)
    fn = inner if inner is not None else fn
    return inspect.unwrap(fn) if inspect.isfunction(fn) else fn


def kernel_function(kernel):
    """The Python function of a `@cuda.jit` kernel (on a GPU or in the simulator), or None."""
    if numba_parallel(kernel) is not None or not hasattr(kernel, "py_func"):
        return None                            # a CPU dispatcher, or no kernel at all
    return kernel.py_func


def _forbidden(module: str) -> bool:
    if module.startswith("solutions") and solutions_mode():
        return False
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def _origin(obj) -> str:
    """The module an object comes from: a module's own name, else where its code was defined."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    inner = getattr(obj, "py_func", None)       # Numba dispatchers and CUDA kernels
    module = getattr(inner if inner is not None else obj, "__module__", None)
    return module if isinstance(module, str) else ""


def function_tree(fn) -> ast.FunctionDef:
    """The AST of `fn`'s definition (decorators included)."""
    source = textwrap.dedent(inspect.getsource(python_function(fn)))
    node = ast.parse(source).body[0]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise TypeError(f"{fn!r} is not defined by a def statement")
    return node


def attribute_chain(node) -> str | None:
    """'a.b.c' for the expression a.b.c (a Name followed by attributes), else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _local_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and node is not tree:
            names.add(getattr(node, "name", ""))
    return names


def _resolve(chain: str, namespace: dict):
    """The objects a.b.c passes through, from the function's globals (or builtins)."""
    root, *attrs = chain.split(".")
    if root in namespace:
        obj = namespace[root]
    elif hasattr(builtins, root):
        obj = getattr(builtins, root)
    else:
        return []
    found = [(root, obj)]
    for k, attr in enumerate(attrs):
        try:
            obj = getattr(obj, attr)
        except Exception:                        # lazy imports, properties: stop where it fails
            break
        found.append((".".join([root, *attrs[:k + 1]]), obj))
    return found


def audit(fn, name: str, allowed: tuple[str, ...] = ()) -> None:
    """Refuse `fn` if it uses what FORBIDDEN lists, apart from the objects named in `allowed`
    (full dotted names, such as "npxception.ops.softmax_cross_entropy").

    Looks at where `fn` was defined, at its imports, and at every global name and attribute chain
    in its source, resolved in its module's globals; helpers defined in the same module are
    audited the same way (a wrapper one call deep is still a wrapper).
    """
    permitted = {}
    for dotted in allowed:
        module, _, attr = dotted.rpartition(".")
        permitted[id(getattr(importlib.import_module(module), attr))] = dotted
    _audit(fn, name, allowed, permitted, set())


def _audit(fn, name: str, allowed: tuple[str, ...], permitted: dict, seen: set) -> None:
    py = python_function(fn)
    if not inspect.isfunction(py):
        refuse(name, f"{fn!r} is not a function written in Python: write the function yourself")
    if id(py) in seen:
        return
    seen.add(id(py))
    label = name if py.__name__ == name else f"{name} (through {py.__name__})"
    if _forbidden(py.__module__ or ""):
        refuse(label, f"it is {py.__module__}.{py.__name__}, not your own code: write it yourself")
    try:
        tree = function_tree(py)
    except (OSError, TypeError) as error:
        refuse(label, f"its source cannot be read ({error}); define it with def in a file or cell")
    may_use = f" (it may use {', '.join(allowed)})" if allowed else ""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            base = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                if full not in allowed and (_forbidden(full) or _forbidden(base)):
                    refuse(label, f"it imports {full}: this exercise asks you to write what it computes"
                                  + may_use)
    local = _local_names(tree)
    chains, inner = [], set()                    # the longest attribute chains, and bare names
    for node in ast.walk(tree):
        if id(node) in inner:
            continue
        if isinstance(node, ast.Attribute) and attribute_chain(node) is not None:
            chains.append(attribute_chain(node))
            sub = node.value
            while isinstance(sub, ast.Attribute):
                inner.add(id(sub))
                sub = sub.value
            inner.add(id(sub))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            chains.append(node.id)
    for chain in chains:
        root = chain.split(".")[0]
        if root in local:
            continue
        if root in EVASIVE:
            refuse(label, f"it uses {root}, which no exercise needs (the grader refuses code that "
                          "reaches modules without naming them)")
        resolved = _resolve(chain, py.__globals__)
        if resolved and id(resolved[-1][1]) in permitted:
            continue
        for _, obj in resolved:
            if _forbidden(_origin(obj)):
                refuse(label, f"it uses {chain} (from {_origin(obj)}): this exercise asks you to "
                              "write what it computes" + may_use)
            helper = python_function(obj)
            if inspect.isfunction(helper) and helper.__module__ == py.__module__ and helper is not py:
                _audit(obj, name, allowed, permitted, seen)


# --------------------------------------------------------------------------- Numba (notebooks 3 and 9)
def numba_parallel(fn) -> bool | None:
    """True if `fn` is a Numba CPU dispatcher compiled with parallel=True, False if it is one
    without it, None if it is no Numba CPU function at all."""
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:
        return None
    if not isinstance(fn, CPUDispatcher):
        return None
    return bool(fn.targetoptions.get("parallel"))


def _is_prange(node, namespace) -> bool:
    import numba

    if not isinstance(node, ast.Call):
        return False
    chain = attribute_chain(node.func)
    return chain is not None and any(obj is numba.prange for _, obj in _resolve(chain, namespace)[-1:])


def prange_loops(fn) -> list[ast.For]:
    """The `for ... in prange(...)` loops of `fn`'s source."""
    namespace = python_function(fn).__globals__
    return [node for node in ast.walk(function_tree(fn))
            if isinstance(node, ast.For) and _is_prange(node.iter, namespace)]


def _names(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def races(fn) -> list[str]:
    """Updates inside a prange loop that several iterations can make to the same array element.

    An element is owned by an iteration when its index depends on the loop variable (directly, or
    through variables computed from it). `a[i] += v` or `a[i] = a[i] + v` with an index that does
    not depend on it is a read-modify-write that two threads can interleave: a race. (A scalar
    `acc += v` is not listed: Numba turns that into a per-thread reduction.)
    """
    found = []
    first_line = python_function(fn).__code__.co_firstlineno   # the decorator's line, as in the source
    for loop in prange_loops(fn):
        owned = _names(loop.target)
        while True:                              # the variables derived from the loop variable
            before = len(owned)
            for node in ast.walk(loop):
                if isinstance(node, ast.Assign) and _names(node.value) & owned:
                    for target in node.targets:
                        owned |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)
                                  and isinstance(n.ctx, ast.Store)}
                elif isinstance(node, ast.For) and _names(node.iter) & owned:
                    owned |= _names(node.target)
            if len(owned) == before:
                break
        loop_var = ", ".join(sorted(_names(loop.target)))
        for node in ast.walk(loop):
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Subscript):
                target = node.target
            elif (isinstance(node, ast.Assign) and len(node.targets) == 1
                  and isinstance(node.targets[0], ast.Subscript)
                  and ast.dump(node.targets[0].value) in {ast.dump(n.value) for n in ast.walk(node.value)
                                                          if isinstance(n, ast.Subscript)}):
                target = node.targets[0]
            else:
                continue
            # Owned: an index that depends on the loop variable, or a view that does
            # (`part = partials[k]` then `part[c] += v`).
            if not (_names(target.slice) | _names(target.value)) & owned:
                found.append(f"`{ast.unparse(node)}` (line {first_line + node.lineno - 1}) updates "
                             f"an element whose index does not depend on the prange loop variable "
                             f"{loop_var}: iterations on different threads add into the same element")
    return found


def prange_bounds(fn) -> list[set[str]]:
    """For every prange loop of `fn`, the names its bounds depend on, local names expanded to what
    was assigned to them (`prange(n)` after `n = chunks` gives {"chunks"})."""
    tree = function_tree(fn)
    assigned = _assignments(tree)
    return [set().union(*(_names(_expand(arg, assigned)) for arg in loop.iter.args))
            for loop in prange_loops(fn)]


def calls_in_prange(fn, target) -> list[ast.Call]:
    """The calls inside `fn`'s prange loops to the object `target` (a function), however named."""
    namespace = python_function(fn).__globals__
    found = []
    for loop in prange_loops(fn):
        for node in ast.walk(loop):
            chain = attribute_chain(node.func) if isinstance(node, ast.Call) else None
            resolved = _resolve(chain, namespace) if chain else []
            if resolved and resolved[-1][1] is target:
                found.append(node)
    return found


# --------------------------------------------------------------------------- CUDA (notebook 4)
def cuda_simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def counting_array(array):
    """A simulator device array that records which thread read which element of `array`.

    Only in Numba's CUDA simulator, where every GPU thread is a Python thread that knows its
    blockIdx and threadIdx. Returns (device array, {(block, thread): elements it read},
    {element: threads that read it}), blocks and threads as (x, y, z) tuples."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    elements_of, threads_of = defaultdict(set), defaultdict(set)
    lock = threading.Lock()

    class Counted(FakeCUDAArray):
        def __getitem__(self, index):
            value = super().__getitem__(index)
            thread = threading.current_thread()
            if hasattr(thread, "threadIdx") and not isinstance(value, FakeCUDAArray):
                who = (tuple(thread.blockIdx), tuple(thread.threadIdx))
                key = index if isinstance(index, tuple) else (index,)
                with lock:
                    elements_of[who].add(key)
                    threads_of[key].add(who)
            return value

    return Counted(array), elements_of, threads_of


def even_share(total: int, workers: int) -> int:
    """The most elements one of `workers` threads handles when `total` are split evenly."""
    return math.ceil(total / workers)


def _assignments(tree: ast.AST) -> dict[str, ast.expr]:
    """name -> the expression last assigned to it (tuple unpacking of a tuple included)."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Name):
                found[target.id] = value
            elif (isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
                  and len(target.elts) == len(value.elts)):
                for t, v in zip(target.elts, value.elts):
                    if isinstance(t, ast.Name):
                        found[t.id] = v
    return found


def _expand(expr: ast.expr, assigned: dict, depth: int = 6) -> ast.expr:
    """`expr` with local names replaced by what was assigned to them (a few levels deep)."""
    class Substitute(ast.NodeTransformer):
        def visit_Name(self, node):
            return _expand(assigned[node.id], assigned, depth - 1) if node.id in assigned and depth else node

    return Substitute().visit(ast.parse(ast.unparse(expr), mode="eval").body)


def range_loops(fn) -> list[tuple[ast.For, ast.expr, ast.expr]]:
    """(loop, start, step) of every `for ... in range(start, stop, step)` loop in `fn`, with local
    names expanded (a missing step is the constant 1)."""
    tree = function_tree(fn)
    assigned = _assignments(tree)
    loops = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)
                and attribute_chain(node.iter.func) == "range" and node.iter.args):
            args = node.iter.args
            start = args[0] if len(args) > 1 else ast.Constant(0)
            step = args[2] if len(args) > 2 else ast.Constant(1)
            loops.append((node, _expand(start, assigned), _expand(step, assigned)))
    return loops


def chains_in(expr: ast.AST) -> set[str]:
    """Every attribute chain and name that occurs in `expr` ('cuda.threadIdx.x', 'cuda.grid', ...)."""
    return {c for c in (attribute_chain(n) for n in ast.walk(expr) if isinstance(n, (ast.Attribute, ast.Name)))
            if c is not None}


def is_grid_size(expr: ast.expr) -> bool:
    """cuda.gridsize(1), or cuda.blockDim.x * cuda.gridDim.x in either order."""
    if isinstance(expr, ast.Call) and attribute_chain(expr.func) == "cuda.gridsize":
        return True
    return (isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mult)
            and {attribute_chain(expr.left), attribute_chain(expr.right)} == {"cuda.blockDim.x", "cuda.gridDim.x"})


def calls_to(fn, chain: str) -> list[tuple[ast.Call, bool]]:
    """The calls to `chain` in `fn`'s source, each with whether it sits inside a loop."""
    found = []

    def visit(node, in_loop):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Call) and attribute_chain(child.func) == chain:
                found.append((child, in_loop))
            visit(child, in_loop or isinstance(child, (ast.For, ast.While)))

    visit(function_tree(fn), False)
    return found
