"""Exact path-dependent TreeSHAP for XGBoost tree models, compiled with numba.

Gives the same numbers as ``booster.predict(xgb.DMatrix(X), pred_contribs=True)`` (within float32 rounding)
at a fraction of the cost.

Method (the path formulation of GPUTreeShap, Mitchell et al. 2022; Fast TreeSHAP v2, Yang 2021):

* The SHAP values of one tree are a sum over its leaves. For a leaf ``l`` with value ``v`` whose root→leaf
  path splits on the unique features ``P`` (``d = |P|``; a feature split on twice is merged), feature
  ``j ∈ P`` has a *zero fraction* ``z_j`` (the product of the cover ratios ``cover(child)/cover(parent)`` of
  the path's edges on ``j``) and a *one fraction* ``o_j(x) ∈ {0, 1}`` (1 iff ``x`` goes the path's way at
  every split on ``j``). The leaf adds to feature ``i``::

      v · (o_i − z_i) · Σ_{S ⊆ P∖{i}} |S|! (d − |S| − 1)! / d! · Π_{j∈S} o_j · Π_{j∉S∪{i}} z_j

  which is what XGBoost's ExtendPath/UnwindPath recursion (src/predictor/cpu_treeshap.cc) computes.
* ``x`` enters only through the ``d`` bits ``o_j``, so :func:`compile_booster` tabulates, per leaf, the
  ``d`` contributions for each of the ``2^d`` bit patterns (``d ≤ 6`` for depth 6: at most 64 × 6 numbers).
* Small subtrees are collapsed further: for a subtree whose root has ``h`` unique path features above it
  and which has ``s`` internal nodes (``h + s ≤ MAX_GROUP_BITS``, 8), the contributions of all its leaves
  depend only on the ``h`` path bits and the ``s`` outcomes (left/right) of its own nodes, so their leaf
  tables are summed into one *group* table of ``2^(h+s)`` rows × the subtree's unique features. For depth 6
  a group is typically a depth-2 subtree: 4 leaves · ~6 additions become ~7.
* Per row and tree, one pass over the internal nodes (parents before children) makes one comparison per
  node; above the groups it carries to each child the set of path features the row has *left* (a bit per
  feature position on the path), inside a group it records the node's outcome bit in the group's index;
  each group then adds its table row for that index to the features it covers. That is ≈ internal nodes +
  groups · features additions per tree, instead of XGBoost's leaves · depth² with divisions.
* Rows are processed in blocks of ``BLOCK_ROWS`` (in parallel with ``prange``), transposed to
  feature-major so each node's comparison and each table gather-add is a loop over the block's rows
  (vectorised, branch-free); within a block the loop is tree-major so a tree's tables stay in cache; tables
  are float32, sums float64, the result float32 like XGBoost's.

Semantics as XGBoost's: the input is cast to float32, a row goes left iff ``x < threshold`` (float32), NaN
follows ``default_left``; the last column is XGBoost's expected value (sum of the trees' cover-weighted mean
leaf values, in float32 as XGBoost adds them) plus the base margin. Only gbtree models with one output and
numerical splits are supported; anything else raises :class:`ValueError` so callers can fall back to
``pred_contribs``. A per-row ``base_margin`` set on a DMatrix is not modelled (the model's ``base_score`` is).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import njit, prange

__all__ = ["TreeShapModel", "compile_booster", "contributions"]

#: Rows per work item: its float32 input, uint32 patterns and float64 sums (features × rows) stay in L2.
BLOCK_ROWS = 2048
#: Subtrees with at most this many path bits + internal nodes are collapsed into one table.
MAX_GROUP_BITS = 8
#: Below this many rows, the serial kernel (no thread pool, releases the GIL: fine from many Python threads).
SERIAL_BELOW = 64
#: Largest number of unique features on one root→leaf path (a leaf's table has 2^d · d entries).
MAX_PATH_FEATURES = 16
#: Largest total table size accepted by default (bytes).
MAX_TABLE_BYTES = 1 << 30

_PARALLEL_LOCK = threading.Lock()

_LOGIT_OBJECTIVES = ("binary:logistic", "reg:logistic", "binary:logitraw")
_IDENTITY_OBJECTIVES = (
    "reg:squarederror",
    "reg:linear",
    "reg:pseudohubererror",
    "reg:absoluteerror",
    "reg:quantileerror",
)
_LOG_OBJECTIVES = ("count:poisson", "reg:gamma", "reg:tweedie")


@dataclass(frozen=True)
class TreeShapModel:
    """A tree ensemble compiled for :func:`contributions`: flat NumPy arrays only (no pickle needed).

    Raw nodes (XGBoost's numbering within each tree, trees concatenated, ``tree_ptr`` delimits them):
    ``left``/``right`` (-1 for a leaf), ``feature`` (-1 for a leaf), ``threshold`` (float32),
    ``default_left``, ``cover`` (sum_hessian), ``value`` (leaf value; 0 for internal nodes).

    Compiled form, per tree (``int_ptr``, ``grp_ptr`` delimit the trees): the internal nodes, parents before
    children (``int_*``); each either *propagates* the row's pattern from its slot ``int_slot`` to its
    children's slots ``int_left_slot``/``int_right_slot`` (setting ``int_bit`` on the side the row does not
    take), or, inside a group, *records* its outcome (``int_bit`` set if the row goes left) in its group's
    slot ``int_slot``. A *group* is a leaf, or a small subtree collapsed into one table: it has the slot
    ``grp_slot``, an index of ``grp_bits`` bits (path-pattern bits, then outcome bits), the features
    ``grp_features[:grp_size]`` and the table ``table[grp_table_ptr + k · 2^grp_bits + index]`` (feature
    ``k``'s contribution). ``max_slots`` is the most slots of one tree.
    """

    n_features: int
    n_trees: int
    base_margin: float
    expected_value: float
    # raw nodes
    tree_ptr: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    cover: np.ndarray
    value: np.ndarray
    # compiled internal nodes
    int_ptr: np.ndarray
    int_mode: np.ndarray
    int_feature: np.ndarray
    int_threshold: np.ndarray
    int_default_left: np.ndarray
    int_slot: np.ndarray
    int_left_slot: np.ndarray
    int_right_slot: np.ndarray
    int_bit: np.ndarray
    # compiled groups (leaves and collapsed subtrees)
    grp_ptr: np.ndarray
    grp_slot: np.ndarray
    grp_bits: np.ndarray
    grp_size: np.ndarray
    grp_features: np.ndarray
    grp_table_ptr: np.ndarray
    table: np.ndarray
    max_slots: int

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))


# --------------------------------------------------------------------------------------------- parsing


def _base_score(learner_param: dict[str, Any]) -> float:
    raw = str(learner_param.get("base_score", "0.5")).strip()
    if raw.startswith("["):
        parts = [p for p in raw.strip("[]").split(",") if p.strip()]
        if len(parts) != 1:
            raise ValueError(f"TreeSHAP: base_score {raw!r} has {len(parts)} values; only one output is supported")
        raw = parts[0]
    return float(np.float32(float(raw)))


def _prob_to_margin(objective: str, base_score: float) -> float:
    """XGBoost's ``ObjFunction::ProbToMargin`` of ``base_score`` (float32), for the objectives supported."""
    b = np.float32(base_score)
    if objective in _LOGIT_OBJECTIVES:
        with np.errstate(divide="ignore"):
            return float(np.float32(-np.log(np.float32(1.0) / b - np.float32(1.0))))
    if objective in _IDENTITY_OBJECTIVES:
        return float(b)
    if objective in _LOG_OBJECTIVES:
        return float(np.float32(np.log(b)))
    raise ValueError(f"TreeSHAP: objective {objective!r} is not supported")


def _tree_mean_value(left: list[int], right: list[int], cover: np.ndarray, value: np.ndarray, nid: int) -> np.float32:
    """XGBoost's ``FillNodeMeanValues`` (float32, the same operation order): the tree's expected value."""
    if left[nid] == -1:
        return np.float32(value[nid])
    lo, hi = left[nid], right[nid]
    r = _tree_mean_value(left, right, cover, value, lo) * cover[lo]
    r = np.float32(r + _tree_mean_value(left, right, cover, value, hi) * cover[hi])
    return np.float32(r / cover[nid])


def _subtree_internal_counts(left: list[int], right: list[int]) -> list[int]:
    """Number of internal nodes in each node's subtree (iterative post-order)."""
    counts = [0] * len(left)
    stack = [(0, False)]
    while stack:
        nid, done = stack.pop()
        if left[nid] == -1:
            continue
        if done:
            counts[nid] = 1 + counts[left[nid]] + counts[right[nid]]
        else:
            stack.extend(((nid, True), (left[nid], False), (right[nid], False)))
    return counts


@dataclass
class _Group:
    root: int
    prefix: int  # path-pattern bits (unique features above the group)
    features: list[int]
    outcomes: int = 0  # outcome bits recorded so far


@dataclass
class _Leaf:
    group: int
    features: list[int]  # the path's unique features, in order of first occurrence
    zero: list[float]
    value: float
    steps: list[tuple[int, int, int]]  # inside the group: (outcome bit, 1 if the path goes left, feature position)


class _Builder:
    """Accumulates the compiled arrays of all trees."""

    def __init__(self, n_features: int, max_group_bits: int) -> None:
        self.n_features = n_features
        self.max_group_bits = max_group_bits
        self.raw: dict[str, list[np.ndarray]] = {k: [] for k in ("l", "r", "f", "t", "dl", "c", "v")}
        self.tree_ptr = [0]
        self.nodes: dict[str, list[Any]] = {k: [] for k in ("mode", "f", "t", "dl", "slot", "ls", "rs", "bit")}
        self.int_ptr = [0]
        self.groups: list[_Group] = []
        self.grp_slot: list[int] = []
        self.grp_ptr = [0]
        self.leaves: list[_Leaf] = []
        self.expected = np.float32(0.0)
        self.max_slots = 1

    def add_tree(self, tree: dict[str, Any]) -> None:
        tp = tree.get("tree_param", {})
        if int(tp.get("size_leaf_vector", "1")) > 1:
            raise ValueError("TreeSHAP: vector-leaf (multi-target) trees are not supported")
        if any(int(s) != 0 for s in tree.get("split_type", [])) or tree.get("categories_nodes"):
            raise ValueError("TreeSHAP: categorical splits are not supported")
        if int(tp.get("num_deleted", "0")) != 0:
            raise ValueError("TreeSHAP: trees with deleted nodes are not supported")
        left = [int(v) for v in tree["left_children"]]
        right = [int(v) for v in tree["right_children"]]
        feat = np.asarray(tree["split_indices"], dtype=np.int64)
        thr = np.asarray(tree["split_conditions"], dtype=np.float32)
        dl = np.asarray(tree["default_left"], dtype=np.uint8)
        cover = np.asarray(tree["sum_hessian"], dtype=np.float32)
        is_leaf = np.asarray(left) == -1
        if np.any(~is_leaf & ((feat < 0) | (feat >= self.n_features))):
            raise ValueError("TreeSHAP: a split feature index is outside the model's features")
        val = np.where(is_leaf, thr, np.float32(0)).astype(np.float32)
        self.raw["l"].append(np.asarray(left, dtype=np.int32))
        self.raw["r"].append(np.asarray(right, dtype=np.int32))
        self.raw["f"].append(np.where(is_leaf, -1, feat).astype(np.int32))
        self.raw["t"].append(np.where(is_leaf, np.float32(0), thr).astype(np.float32))
        self.raw["dl"].append(dl)
        self.raw["c"].append(cover)
        self.raw["v"].append(val)
        self.tree_ptr.append(self.tree_ptr[-1] + len(left))
        self.expected = np.float32(self.expected + _tree_mean_value(left, right, cover, val, 0))

        sub = _subtree_internal_counts(left, right)
        # breadth first (parents before children): (node, path features, zero fractions, group, steps)
        queue: list[tuple[int, list[int], list[float], int, list[tuple[int, int, int]]]] = [(0, [], [], -1, [])]
        above: list[tuple[int, int]] = []  # (node, bit position) of propagating nodes
        inside: list[tuple[int, int, int]] = []  # (node, group, outcome bit) of recording nodes
        tree_groups: list[int] = []
        group_of_root: dict[int, int] = {}
        head = 0
        while head < len(queue):
            nid, pf, pz, grp, steps = queue[head]
            head += 1
            if grp == -1 and (left[nid] == -1 or len(pf) + sub[nid] <= self.max_group_bits):
                grp = len(self.groups)
                self.groups.append(_Group(root=nid, prefix=len(pf), features=list(pf)))
                tree_groups.append(grp)
                group_of_root[nid] = grp
            if left[nid] == -1:
                if len(pf) > MAX_PATH_FEATURES:
                    raise ValueError(f"TreeSHAP: a path has {len(pf)} unique features (at most {MAX_PATH_FEATURES})")
                self.leaves.append(_Leaf(grp, pf, pz, float(val[nid]), steps))
                continue
            f = int(feat[nid])
            pos = pf.index(f) if f in pf else len(pf)
            if grp == -1:
                above.append((nid, pos))
            else:
                g = self.groups[grp]
                outcome = g.outcomes
                g.outcomes += 1
                inside.append((nid, grp, outcome))
                if f not in g.features:
                    g.features.append(f)
            for child, goes_left in ((left[nid], 1), (right[nid], 0)):
                ratio = float(cover[child]) / float(cover[nid]) if float(cover[nid]) != 0.0 else math.nan
                cf, cz = list(pf), list(pz)
                if pos == len(pf):
                    cf.append(f)
                    cz.append(ratio)
                else:
                    cz[pos] *= ratio
                cs = steps if grp == -1 else [*steps, (outcome, goes_left, pos)]
                queue.append((child, cf, cz, grp, cs))

        slot = {nid: k for k, (nid, _pos) in enumerate(above)}
        for k, grp in enumerate(tree_groups):
            slot[self.groups[grp].root] = len(above) + k
            self.grp_slot.append(len(above) + k)
        # the kernel starts each tree with the root's slot 0 cleared
        assert slot[0] == 0
        self.max_slots = max(self.max_slots, len(above) + len(tree_groups))
        order = [(nid, 0, pos, -1) for nid, pos in above] + [(n, 1, o, g) for n, g, o in inside]
        # parents before children (breadth-first position), whatever XGBoost's numbering
        bfs_pos = {nid: k for k, (nid, *_rest) in enumerate(queue)}
        order.sort(key=lambda item: bfs_pos[item[0]])
        for nid, mode, pos, grp in order:
            self.nodes["mode"].append(mode)
            self.nodes["f"].append(int(feat[nid]))
            self.nodes["t"].append(thr[nid])
            self.nodes["dl"].append(int(dl[nid]))
            if mode == 0:
                self.nodes["slot"].append(slot[nid])
                self.nodes["ls"].append(slot[left[nid]])
                self.nodes["rs"].append(slot[right[nid]])
                self.nodes["bit"].append(1 << pos)
            else:
                g = self.groups[grp]
                self.nodes["slot"].append(slot[g.root])
                self.nodes["ls"].append(0)
                self.nodes["rs"].append(0)
                self.nodes["bit"].append(1 << (g.prefix + pos))
        self.int_ptr.append(self.int_ptr[-1] + len(order))
        self.grp_ptr.append(len(self.groups))

    def build(self, n_trees: int, base_margin: float, max_table_bytes: int) -> TreeShapModel:
        groups, leaves = self.groups, self.leaves
        n_groups, n_leaves = len(groups), len(leaves)
        grp_bits = np.asarray([g.prefix + g.outcomes for g in groups], dtype=np.int64)
        grp_size = np.asarray([len(g.features) for g in groups], dtype=np.int64)
        grp_table_ptr = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(np.left_shift(1, grp_bits) * grp_size, out=grp_table_ptr[1:])
        leaf_depth = np.asarray([len(lf.features) for lf in leaves], dtype=np.int64)
        leaf_table_ptr = np.zeros(n_leaves + 1, dtype=np.int64)
        np.cumsum(np.left_shift(1, leaf_depth) * leaf_depth, out=leaf_table_ptr[1:])
        need = int(grp_table_ptr[-1]) * 4 + int(leaf_table_ptr[-1]) * 8
        if need > max_table_bytes:
            raise ValueError(f"TreeSHAP: tables would take {need} bytes (limit {max_table_bytes})")

        dmax = max([1, *leaf_depth.tolist()])
        smax = max([1, *(len(lf.steps) for lf in leaves)])
        umax = max([1, *grp_size.tolist()])
        leaf_zero = np.zeros((n_leaves, dmax))
        leaf_value = np.asarray([lf.value for lf in leaves], dtype=np.float64)
        leaf_group = np.asarray([lf.group for lf in leaves], dtype=np.int64)
        leaf_union = np.zeros((n_leaves, dmax), dtype=np.int64)
        leaf_nsteps = np.asarray([len(lf.steps) for lf in leaves], dtype=np.int64)
        leaf_steps = np.zeros((n_leaves, smax, 3), dtype=np.int64)
        grp_features = np.zeros((n_groups, umax), dtype=np.int32)
        for k, g in enumerate(groups):
            grp_features[k, : len(g.features)] = g.features
        for k, lf in enumerate(leaves):
            leaf_zero[k, : len(lf.zero)] = lf.zero
            where = {f: u for u, f in enumerate(groups[lf.group].features)}
            leaf_union[k, : len(lf.features)] = [where[f] for f in lf.features]
            if lf.steps:
                leaf_steps[k, : len(lf.steps)] = lf.steps
        # leaves of each group, contiguous
        by_group = np.argsort(leaf_group, kind="stable")
        grp_leaf_ptr = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(np.bincount(leaf_group, minlength=n_groups), out=grp_leaf_ptr[1:])

        leaf_table = np.zeros(int(leaf_table_ptr[-1]))
        _fill_leaf_tables(leaf_depth, leaf_zero, leaf_value, leaf_table_ptr, leaf_table)
        table = np.zeros(int(grp_table_ptr[-1]), dtype=np.float32)
        prefix = np.asarray([g.prefix for g in groups], dtype=np.int64)
        _fill_group_tables(
            grp_bits, prefix, grp_table_ptr, grp_leaf_ptr, by_group.astype(np.int64), leaf_depth, leaf_table_ptr,
            leaf_table, leaf_union, leaf_nsteps, leaf_steps, table,
        )  # fmt: skip

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        nodes = self.nodes
        return TreeShapModel(
            n_features=self.n_features,
            n_trees=n_trees,
            base_margin=base_margin,
            expected_value=float(np.float32(self.expected + np.float32(base_margin))),
            tree_ptr=np.asarray(self.tree_ptr, dtype=np.int64),
            left=cat(self.raw["l"], np.int32),
            right=cat(self.raw["r"], np.int32),
            feature=cat(self.raw["f"], np.int32),
            threshold=cat(self.raw["t"], np.float32),
            default_left=cat(self.raw["dl"], np.uint8),
            cover=cat(self.raw["c"], np.float32),
            value=cat(self.raw["v"], np.float32),
            int_ptr=np.asarray(self.int_ptr, dtype=np.int64),
            int_mode=np.asarray(nodes["mode"], dtype=np.uint8),
            int_feature=np.asarray(nodes["f"], dtype=np.int32),
            int_threshold=np.asarray(nodes["t"], dtype=np.float32),
            int_default_left=np.asarray(nodes["dl"], dtype=np.uint32),
            int_slot=np.asarray(nodes["slot"], dtype=np.int32),
            int_left_slot=np.asarray(nodes["ls"], dtype=np.int32),
            int_right_slot=np.asarray(nodes["rs"], dtype=np.int32),
            int_bit=np.asarray(nodes["bit"], dtype=np.uint32),
            grp_ptr=np.asarray(self.grp_ptr, dtype=np.int64),
            grp_slot=np.asarray(self.grp_slot, dtype=np.int32),
            grp_bits=grp_bits.astype(np.int32),
            grp_size=grp_size.astype(np.int32),
            grp_features=grp_features,
            grp_table_ptr=grp_table_ptr,
            table=table,
            max_slots=int(self.max_slots),
        )


def compile_booster(
    booster: Any,
    iteration_range: tuple[int, int] | None = None,
    max_group_bits: int = MAX_GROUP_BITS,
    max_table_bytes: int = MAX_TABLE_BYTES,
) -> TreeShapModel:
    """Compile an XGBoost booster for :func:`contributions`.

    ``iteration_range`` selects boosting rounds as ``Booster.predict(iteration_range=...)`` does
    (``None`` or ``(0, 0)``: all). ``max_group_bits`` bounds the subtrees collapsed into one table (path
    bits + internal nodes; 0 tabulates single leaves only). Raises :class:`ValueError` for what is not
    supported: a booster other than gbtree (gblinear, dart), more than one output (multi-class,
    multi-target, vector leaves), categorical splits, an unknown objective, or tables larger than
    ``max_table_bytes``.
    """
    try:
        raw = booster.save_raw("json")
    except Exception as exc:  # not an xgboost.Booster
        raise ValueError(f"TreeSHAP: cannot read the model ({type(exc).__name__}: {exc})") from exc
    doc = json.loads(bytes(raw))
    learner = doc["learner"]
    gb = learner["gradient_booster"]
    if gb.get("name") != "gbtree":
        raise ValueError(f"TreeSHAP: booster {gb.get('name')!r} is not supported (only gbtree)")
    lp = learner["learner_model_param"]
    if int(lp.get("num_class", "0")) > 1 or int(lp.get("num_target", "1")) > 1:
        raise ValueError("TreeSHAP: models with more than one output (multi-class/multi-target) are not supported")
    objective = learner.get("objective", {}).get("name", "")
    base_margin = _prob_to_margin(objective, _base_score(lp))
    n_features = int(lp["num_feature"])

    model = gb["model"]
    trees = model["trees"]
    if any(int(g) != 0 for g in model.get("tree_info", [])):
        raise ValueError("TreeSHAP: trees of more than one output group are not supported")
    indptr = [int(i) for i in model.get("iteration_indptr", range(len(trees) + 1))]
    if iteration_range is not None and tuple(iteration_range) != (0, 0):
        lo, hi = (int(v) for v in iteration_range)
        if not 0 <= lo < hi <= len(indptr) - 1:
            raise ValueError(f"TreeSHAP: iteration_range {iteration_range} outside 0..{len(indptr) - 1}")
        trees = trees[indptr[lo] : indptr[hi]]
    builder = _Builder(n_features, max(0, min(int(max_group_bits), MAX_PATH_FEATURES)))
    for tree in trees:
        builder.add_tree(tree)
    return builder.build(len(trees), base_margin, max_table_bytes)


# --------------------------------------------------------------------------------------------- kernels


@njit(cache=True, parallel=True, fastmath=False)
def _fill_leaf_tables(depth, zero, value, table_ptr, table):  # pragma: no cover - compiled
    """Per leaf and pattern ``c`` (bit j set: the row *left* the path at feature j, ``o_j = 0``), the ``d``
    contributions ``table[ptr + c·d + i]`` (the formula of the module docstring)."""
    n = depth.shape[0]
    dmax = zero.shape[1]
    for leaf in prange(n):
        d = depth[leaf]
        if d == 0:
            continue
        # weight k!(d-1-k)!/d! of a subset of size k of the other d-1 features
        wk = np.empty(d)
        for k in range(d):
            wk[k] = math.exp(math.lgamma(k + 1) + math.lgamma(d - k) - math.lgamma(d + 1))
        coef = np.empty(dmax + 1)
        o = np.empty(d)
        v = value[leaf]
        base = table_ptr[leaf]
        for c in range(1 << d):
            for j in range(d):
                o[j] = 0.0 if (c >> j) & 1 else 1.0
            for i in range(d):
                # coefficients of prod_{j != i} (z_j + o_j t)
                coef[0] = 1.0
                m = 0
                for j in range(d):
                    if j == i:
                        continue
                    zj = zero[leaf, j]
                    oj = o[j]
                    coef[m + 1] = coef[m] * oj
                    for k in range(m, 0, -1):
                        coef[k] = coef[k] * zj + coef[k - 1] * oj
                    coef[0] = coef[0] * zj
                    m += 1
                w = 0.0
                for k in range(d):
                    w += coef[k] * wk[k]
                table[base + c * d + i] = v * (o[i] - zero[leaf, i]) * w


@njit(cache=True, parallel=True, fastmath=False)
def _fill_group_tables(
    grp_bits, prefix, grp_table_ptr, grp_leaf_ptr, leaves, leaf_depth, leaf_table_ptr, leaf_table, leaf_union,
    leaf_nsteps, leaf_steps, table,
):  # pragma: no cover - compiled
    """Sum the leaf tables of each group into its table ``table[ptr + u·2^bits + index]``.

    ``index`` = the group's path pattern (``prefix`` bits) | its internal nodes' outcomes (1: went left)
    shifted by ``prefix``; a leaf's pattern bit for its feature position ``q`` is the path bit (``q`` <
    ``prefix``) or'ed with a mismatch at any of the leaf's steps on that feature inside the group.
    """
    n_groups = grp_bits.shape[0]
    for g in prange(n_groups):
        nb = grp_bits[g]
        h = prefix[g]
        pmask = (1 << h) - 1
        tp = grp_table_ptr[g]
        for li in range(grp_leaf_ptr[g], grp_leaf_ptr[g + 1]):
            leaf = leaves[li]
            d = leaf_depth[leaf]
            ltp = leaf_table_ptr[leaf]
            ns = leaf_nsteps[leaf]
            for idx in range(1 << nb):
                pat = idx & pmask
                for s in range(ns):
                    outcome = (idx >> (h + leaf_steps[leaf, s, 0])) & 1
                    if outcome != leaf_steps[leaf, s, 1]:
                        pat |= 1 << leaf_steps[leaf, s, 2]
                for q in range(d):
                    table[tp + (leaf_union[leaf, q] << nb) + idx] += leaf_table[ltp + pat * d + q]


@njit(cache=True, inline="always", fastmath=False)
def _block(
    Xt, acc, pat, int_ptr, int_mode, int_feature, int_threshold, int_default_left, int_slot, int_left_slot,
    int_right_slot, int_bit, grp_ptr, grp_slot, grp_bits, grp_size, grp_features, grp_table_ptr, table,
):  # pragma: no cover - compiled
    """Add the contributions of all trees for a block of rows: ``Xt`` is (features, rows), ``acc`` likewise."""
    n_trees = int_ptr.shape[0] - 1
    nr = Xt.shape[1]
    for t in range(n_trees):
        for r in range(nr):
            pat[0, r] = 0
        for node in range(int_ptr[t], int_ptr[t + 1]):
            f = int_feature[node]
            thr = int_threshold[node]
            dl = int_default_left[node]
            bit = int_bit[node]
            s = int_slot[node]
            if int_mode[node] == 0:
                ls = int_left_slot[node]
                rs = int_right_slot[node]
                for r in range(nr):
                    x = Xt[f, r]
                    gl = np.uint32(x < thr) | (np.uint32(x != x) & dl)
                    p = pat[s, r]
                    rb = bit * gl
                    pat[ls, r] = p | (bit ^ rb)
                    pat[rs, r] = p | rb
            else:
                for r in range(nr):
                    x = Xt[f, r]
                    gl = np.uint32(x < thr) | (np.uint32(x != x) & dl)
                    pat[s, r] |= bit * gl
        for g in range(grp_ptr[t], grp_ptr[t + 1]):
            s = grp_slot[g]
            nb = grp_bits[g]
            tp = grp_table_ptr[g]
            for k in range(grp_size[g]):
                fk = grp_features[g, k]
                off = tp + (k << nb)
                for r in range(nr):
                    acc[fk, r] += table[off + pat[s, r]]


@njit(cache=True, inline="always", fastmath=False)
def _rows(
    X, out, bias, r0, m, max_slots, int_ptr, int_mode, int_feature, int_threshold, int_default_left, int_slot,
    int_left_slot, int_right_slot, int_bit, grp_ptr, grp_slot, grp_bits, grp_size, grp_features, grp_table_ptr,
    table,
):  # pragma: no cover - compiled
    """Rows ``r0 .. r0+m`` of ``X`` into ``out``: transpose, :func:`_block`, write float32 and the bias."""
    nf = X.shape[1]
    Xt = np.empty((nf, m), dtype=np.float32)
    for r in range(m):
        for f in range(nf):
            Xt[f, r] = X[r0 + r, f]
    acc = np.zeros((nf, m))
    pat = np.empty((max_slots, m), dtype=np.uint32)
    _block(
        Xt, acc, pat, int_ptr, int_mode, int_feature, int_threshold, int_default_left, int_slot, int_left_slot,
        int_right_slot, int_bit, grp_ptr, grp_slot, grp_bits, grp_size, grp_features, grp_table_ptr, table,
    )
    for r in range(m):
        for f in range(nf):
            out[r0 + r, f] = acc[f, r]
        out[r0 + r, nf] = bias


@njit(cache=True, parallel=True, nogil=True, fastmath=False)
def _contrib_parallel(
    X, out, bias, block, max_slots, int_ptr, int_mode, int_feature, int_threshold, int_default_left, int_slot,
    int_left_slot, int_right_slot, int_bit, grp_ptr, grp_slot, grp_bits, grp_size, grp_features, grp_table_ptr,
    table,
):  # pragma: no cover - compiled
    """Blocks of ``block`` rows in parallel (numba's thread pool)."""
    n = X.shape[0]
    n_blocks = (n + block - 1) // block
    for b in prange(n_blocks):
        r0 = b * block
        _rows(
            X, out, bias, r0, min(n, r0 + block) - r0, max_slots, int_ptr, int_mode, int_feature, int_threshold,
            int_default_left, int_slot, int_left_slot, int_right_slot, int_bit, grp_ptr, grp_slot, grp_bits,
            grp_size, grp_features, grp_table_ptr, table,
        )


@njit(cache=True, parallel=False, nogil=True, fastmath=False)
def _contrib_serial(
    X, out, bias, block, max_slots, int_ptr, int_mode, int_feature, int_threshold, int_default_left, int_slot,
    int_left_slot, int_right_slot, int_bit, grp_ptr, grp_slot, grp_bits, grp_size, grp_features, grp_table_ptr,
    table,
):  # pragma: no cover - compiled
    """Blocks of ``block`` rows in the calling thread (no thread pool)."""
    n = X.shape[0]
    for r0 in range(0, n, block):
        _rows(
            X, out, bias, r0, min(n, r0 + block) - r0, max_slots, int_ptr, int_mode, int_feature, int_threshold,
            int_default_left, int_slot, int_left_slot, int_right_slot, int_bit, grp_ptr, grp_slot, grp_bits,
            grp_size, grp_features, grp_table_ptr, table,
        )


def contributions(model: TreeShapModel, X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
    """SHAP values of each row of ``X``: float32 array ``(n, n_features + 1)``, the bias last.

    Equal to ``booster.predict(xgb.DMatrix(X), pred_contribs=True)`` within float32 rounding; each row sums
    to the output margin. ``X`` is cast to float32 (NaN = missing). ``n_threads``: threads to use (default:
    numba's current setting, normally all cores). With 1 thread, or fewer than ``SERIAL_BELOW`` rows, it
    runs in the calling thread without numba's thread pool, which is safe from several Python threads at once.
    """
    Xf = np.ascontiguousarray(X, dtype=np.float32)
    if Xf.ndim != 2 or Xf.shape[1] != model.n_features:
        raise ValueError(f"TreeSHAP: X has shape {Xf.shape}; the model expects {model.n_features} columns")
    n = Xf.shape[0]
    out = np.empty((n, model.n_features + 1), dtype=np.float32)
    if n == 0:
        return out
    # numba.config sets NUMBA_NUM_THREADS at import time from the environment, so it is not statically declared
    limit = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    threads = numba.get_num_threads() if n_threads is None else max(1, min(int(n_threads), limit))
    serial = threads == 1 or n < SERIAL_BELOW
    # blocks no larger than an even share of the rows, so every thread gets work
    block = BLOCK_ROWS if serial else max(16, min(BLOCK_ROWS, -(-n // threads)))
    args = (
        Xf, out, np.float32(model.expected_value), block, model.max_slots, model.int_ptr, model.int_mode,
        model.int_feature, model.int_threshold, model.int_default_left, model.int_slot, model.int_left_slot,
        model.int_right_slot, model.int_bit, model.grp_ptr, model.grp_slot, model.grp_bits, model.grp_size,
        model.grp_features, model.grp_table_ptr, model.table,
    )  # fmt: skip
    if serial:
        _contrib_serial(*args)
        return out
    # one parallel kernel at a time: numba's workqueue threading layer (used when neither OpenMP nor TBB is
    # available) aborts the process on concurrent launches, and two launches would only share the cores
    with _PARALLEL_LOCK:
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            _contrib_parallel(*args)
        finally:
            numba.set_num_threads(previous)
    return out
