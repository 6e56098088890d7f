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
* Per row and tree, one pass over the internal nodes (parents before children) makes one comparison per
  node and carries to each child the set of path features the row has *left* (a bit per feature position on
  the path); each leaf then adds its table row for that pattern. That is ≈ internal nodes + leaves · d
  additions per tree, instead of XGBoost's leaves · depth² with divisions.
* Rows are processed in blocks (in parallel with ``prange``); within a block the loop is tree-major so a
  tree's tables stay in cache; sums are float64, the result float32 like XGBoost's.

Semantics as XGBoost's: the input is cast to float32, a row goes left iff ``x < threshold`` (float32), NaN
follows ``default_left``; the last column is XGBoost's expected value (sum of the trees' cover-weighted mean
leaf values, in float32 as XGBoost adds them) plus the base margin. Only gbtree models with one output and
numerical splits are supported; anything else raises :class:`ValueError` so callers can fall back to
``pred_contribs``. A per-row ``base_margin`` set on a DMatrix is not modelled (the model's ``base_score`` is).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import njit, prange

__all__ = ["TreeShapModel", "compile_booster", "contributions"]

#: Rows per parallel work item: a block's float64 sums (rows × features) stay in L2 beside one tree's tables.
BLOCK_ROWS = 128
#: Below this many rows, the serial kernel (no thread pool; safe to call from several Python threads).
SERIAL_BELOW = 2 * BLOCK_ROWS
#: Largest number of unique features on one root→leaf path (a leaf's table has 2^d · d entries).
MAX_PATH_FEATURES = 16
#: Largest total table size accepted by default (bytes, float64 entries).
MAX_TABLE_BYTES = 1 << 30

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

    Raw nodes (original XGBoost numbering within each tree, trees concatenated; ``tree_ptr`` delimits them):
    ``left``/``right`` (-1 for a leaf), ``feature``, ``threshold`` (float32), ``default_left``, ``cover``
    (sum_hessian), ``value`` (leaf value; 0 for internal nodes).

    Compiled form: each tree's internal nodes in an order where parents precede children
    (``int_*`` arrays, delimited by ``int_ptr``), children addressed by a per-tree *slot* (internal nodes
    ``0..ni-1``, then the tree's leaves ``ni..ni+nl-1``), ``int_bit`` the bit of the node's feature among
    the unique features of its path; leaves (``leaf_ptr``) with ``leaf_depth`` unique path features
    ``leaf_features`` and their tables in ``table`` from ``leaf_table_ptr`` (``2^d`` patterns × ``d``).
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
    int_feature: np.ndarray
    int_threshold: np.ndarray
    int_default_left: np.ndarray
    int_left_slot: np.ndarray
    int_right_slot: np.ndarray
    int_bit: np.ndarray
    # compiled leaves
    leaf_ptr: np.ndarray
    leaf_depth: np.ndarray
    leaf_features: np.ndarray
    leaf_zero: np.ndarray
    leaf_value: np.ndarray
    leaf_table_ptr: np.ndarray
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


def compile_booster(
    booster: Any,
    iteration_range: tuple[int, int] | None = None,
    max_table_bytes: int = MAX_TABLE_BYTES,
) -> TreeShapModel:
    """Compile an XGBoost booster for :func:`contributions`.

    ``iteration_range`` selects boosting rounds as ``Booster.predict(iteration_range=...)`` does
    (``None`` or ``(0, 0)``: all). Raises :class:`ValueError` for what is not supported: a booster other
    than gbtree (gblinear, dart), more than one output (multi-class, multi-target, vector leaves),
    categorical splits, an unknown objective, or tables larger than ``max_table_bytes``.
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
    if objective.startswith(("multi:", "rank:", "survival:", "binary:hinge", "reg:squaredlogerror")):
        raise ValueError(f"TreeSHAP: objective {objective!r} is not supported")
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

    raw_cols: dict[str, list[np.ndarray]] = {k: [] for k in ("left", "right", "feature", "thr", "dl", "cover", "val")}
    tree_ptr = [0]
    int_cols: dict[str, list[Any]] = {k: [] for k in ("feature", "thr", "dl", "lslot", "rslot", "bit")}
    int_ptr = [0]
    leaf_depth: list[int] = []
    leaf_feats: list[list[int]] = []
    leaf_zero: list[list[float]] = []
    leaf_val: list[float] = []
    leaf_ptr = [0]
    expected = np.float32(0.0)
    max_slots = 1

    for tree in trees:
        tp = tree.get("tree_param", {})
        if int(tp.get("size_leaf_vector", "1")) > 1:
            raise ValueError("TreeSHAP: vector-leaf (multi-target) trees are not supported")
        if any(int(s) != 0 for s in tree.get("split_type", [])) or tree.get("categories_nodes"):
            raise ValueError("TreeSHAP: categorical splits are not supported")
        left = [int(v) for v in tree["left_children"]]
        right = [int(v) for v in tree["right_children"]]
        feat = np.asarray(tree["split_indices"], dtype=np.int32)
        thr = np.asarray(tree["split_conditions"], dtype=np.float32)
        dl = np.asarray(tree["default_left"], dtype=np.uint8)
        cover = np.asarray(tree["sum_hessian"], dtype=np.float32)
        is_leaf = np.asarray(left) == -1
        val = np.where(is_leaf, thr, np.float32(0)).astype(np.float32)
        n_nodes = len(left)
        if int(tp.get("num_deleted", "0")) != 0:
            raise ValueError("TreeSHAP: trees with deleted nodes are not supported")
        if np.any(feat[~is_leaf] >= n_features) or np.any(feat[~is_leaf] < 0):
            raise ValueError("TreeSHAP: a split feature index is outside the model's features")
        raw_cols["left"].append(np.asarray(left, dtype=np.int32))
        raw_cols["right"].append(np.asarray(right, dtype=np.int32))
        raw_cols["feature"].append(np.where(is_leaf, -1, feat).astype(np.int32))
        raw_cols["thr"].append(np.where(is_leaf, np.float32(0), thr).astype(np.float32))
        raw_cols["dl"].append(dl)
        raw_cols["cover"].append(cover)
        raw_cols["val"].append(val)
        tree_ptr.append(tree_ptr[-1] + n_nodes)
        expected = np.float32(expected + _tree_mean_value(left, right, cover, val, 0))

        # breadth-first: parents before children; carry the path's unique features and their zero fractions
        internal: list[tuple[int, list[int], list[float], int]] = []  # (node, path feats, zero fracs, bit)
        leaves: list[tuple[int, list[int], list[float]]] = []
        queue: list[tuple[int, list[int], list[float]]] = [(0, [], [])]
        head = 0
        while head < len(queue):
            nid, pf, pz = queue[head]
            head += 1
            if left[nid] == -1:
                leaves.append((nid, pf, pz))
                continue
            f = int(feat[nid])
            if f in pf:
                bit = pf.index(f)
            else:
                bit = len(pf)
            internal.append((nid, pf, pz, bit))
            for child in (left[nid], right[nid]):
                ratio = float(cover[child]) / float(cover[nid]) if float(cover[nid]) != 0.0 else math.nan
                cf, cz = list(pf), list(pz)
                if bit == len(pf):
                    cf.append(f)
                    cz.append(ratio)
                else:
                    cz[bit] *= ratio
                queue.append((child, cf, cz))
        ni = len(internal)
        slot = {nid: k for k, (nid, *_rest) in enumerate(internal)}
        slot.update({nid: ni + k for k, (nid, *_rest) in enumerate(leaves)})
        for nid, _pf, _pz, bit in internal:
            int_cols["feature"].append(int(feat[nid]))
            int_cols["thr"].append(thr[nid])
            int_cols["dl"].append(int(dl[nid]))
            int_cols["lslot"].append(slot[left[nid]])
            int_cols["rslot"].append(slot[right[nid]])
            int_cols["bit"].append(bit)
        int_ptr.append(int_ptr[-1] + ni)
        for nid, pf, pz in leaves:
            if len(pf) > MAX_PATH_FEATURES:
                raise ValueError(f"TreeSHAP: a path has {len(pf)} unique features (at most {MAX_PATH_FEATURES})")
            leaf_depth.append(len(pf))
            leaf_feats.append(pf)
            leaf_zero.append(pz)
            leaf_val.append(float(val[nid]))
        leaf_ptr.append(leaf_ptr[-1] + len(leaves))
        max_slots = max(max_slots, ni + len(leaves))

    n_leaves = len(leaf_depth)
    dmax = max([1, *leaf_depth])
    depth_arr = np.asarray(leaf_depth, dtype=np.int32)
    sizes = (np.left_shift(1, depth_arr.astype(np.int64)) * depth_arr).astype(np.int64)
    table_ptr = np.zeros(n_leaves + 1, dtype=np.int64)
    np.cumsum(sizes, out=table_ptr[1:])
    if int(table_ptr[-1]) * 8 > max_table_bytes:
        raise ValueError(f"TreeSHAP: tables would take {int(table_ptr[-1]) * 8} bytes (limit {max_table_bytes})")
    feats_arr = np.zeros((n_leaves, dmax), dtype=np.int32)
    zero_arr = np.zeros((n_leaves, dmax), dtype=np.float64)
    for k, (pf, pz) in enumerate(zip(leaf_feats, leaf_zero, strict=True)):
        feats_arr[k, : len(pf)] = pf
        zero_arr[k, : len(pz)] = pz
    leaf_val_arr = np.asarray(leaf_val, dtype=np.float64)
    table = np.zeros(int(table_ptr[-1]), dtype=np.float64)
    _fill_tables(depth_arr, zero_arr, leaf_val_arr, table_ptr, table)

    def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return TreeShapModel(
        n_features=n_features,
        n_trees=len(trees),
        base_margin=base_margin,
        expected_value=float(np.float32(expected + np.float32(base_margin))),
        tree_ptr=np.asarray(tree_ptr, dtype=np.int64),
        left=cat(raw_cols["left"], np.int32),
        right=cat(raw_cols["right"], np.int32),
        feature=cat(raw_cols["feature"], np.int32),
        threshold=cat(raw_cols["thr"], np.float32),
        default_left=cat(raw_cols["dl"], np.uint8),
        cover=cat(raw_cols["cover"], np.float32),
        value=cat(raw_cols["val"], np.float32),
        int_ptr=np.asarray(int_ptr, dtype=np.int64),
        int_feature=np.asarray(int_cols["feature"], dtype=np.int32),
        int_threshold=np.asarray(int_cols["thr"], dtype=np.float32),
        int_default_left=np.asarray(int_cols["dl"], dtype=np.uint8),
        int_left_slot=np.asarray(int_cols["lslot"], dtype=np.int32),
        int_right_slot=np.asarray(int_cols["rslot"], dtype=np.int32),
        int_bit=np.left_shift(np.uint32(1), np.asarray(int_cols["bit"], dtype=np.uint32)).astype(np.uint32),
        leaf_ptr=np.asarray(leaf_ptr, dtype=np.int64),
        leaf_depth=depth_arr,
        leaf_features=feats_arr,
        leaf_zero=zero_arr,
        leaf_value=leaf_val_arr,
        leaf_table_ptr=table_ptr,
        table=table,
        max_slots=int(max_slots),
    )


# --------------------------------------------------------------------------------------------- kernels


@njit(cache=True, parallel=True, fastmath=False)
def _fill_tables(depth, zero, value, table_ptr, table):  # pragma: no cover - compiled
    """Per leaf and bit pattern ``c`` (bit j set: the row *left* the path at feature j, ``o_j = 0``)."""
    n = depth.shape[0]
    dmax = zero.shape[1]
    for leaf in prange(n):
        d = depth[leaf]
        if d == 0:
            continue
        # coefficient k!(d-1-k)!/d! for a subset of size k of the other d-1 features
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


@njit(cache=True, inline="always", fastmath=False)
def _block(
    X, r0, r1, acc, pat, int_ptr, int_feature, int_threshold, int_default_left, int_left_slot,
    int_right_slot, int_bit, leaf_ptr, leaf_depth, leaf_features, leaf_table_ptr, table,
):  # pragma: no cover - compiled
    n_trees = int_ptr.shape[0] - 1
    for t in range(n_trees):
        n0 = int_ptr[t]
        ni = int_ptr[t + 1] - n0
        l0 = leaf_ptr[t]
        nl = leaf_ptr[t + 1] - l0
        for r in range(r0, r1):
            a = r - r0
            pat[0] = 0
            for k in range(ni):
                node = n0 + k
                x = X[r, int_feature[node]]
                if x != x:
                    go_left = int_default_left[node] != 0
                else:
                    go_left = x < int_threshold[node]
                p = pat[k]
                q = p | int_bit[node]
                if go_left:
                    pat[int_left_slot[node]] = p
                    pat[int_right_slot[node]] = q
                else:
                    pat[int_left_slot[node]] = q
                    pat[int_right_slot[node]] = p
            for j in range(nl):
                leaf = l0 + j
                d = leaf_depth[leaf]
                base = leaf_table_ptr[leaf] + pat[ni + j] * d
                for k in range(d):
                    acc[a, leaf_features[leaf, k]] += table[base + k]


@njit(cache=True, parallel=True, fastmath=False)
def _contrib_parallel(
    X, out, bias, block, max_slots, int_ptr, int_feature, int_threshold, int_default_left, int_left_slot,
    int_right_slot, int_bit, leaf_ptr, leaf_depth, leaf_features, leaf_table_ptr, table,
):  # pragma: no cover - compiled
    n, nf = X.shape
    n_blocks = (n + block - 1) // block
    for b in prange(n_blocks):
        r0 = b * block
        r1 = min(n, r0 + block)
        acc = np.zeros((r1 - r0, nf))
        pat = np.empty(max_slots, dtype=np.uint32)
        _block(
            X, r0, r1, acc, pat, int_ptr, int_feature, int_threshold, int_default_left, int_left_slot,
            int_right_slot, int_bit, leaf_ptr, leaf_depth, leaf_features, leaf_table_ptr, table,
        )
        for r in range(r0, r1):
            for f in range(nf):
                out[r, f] = acc[r - r0, f]
            out[r, nf] = bias


@njit(cache=True, parallel=False, fastmath=False)
def _contrib_serial(
    X, out, bias, block, max_slots, int_ptr, int_feature, int_threshold, int_default_left, int_left_slot,
    int_right_slot, int_bit, leaf_ptr, leaf_depth, leaf_features, leaf_table_ptr, table,
):  # pragma: no cover - compiled
    n, nf = X.shape
    pat = np.empty(max_slots, dtype=np.uint32)
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        acc = np.zeros((r1 - r0, nf))
        _block(
            X, r0, r1, acc, pat, int_ptr, int_feature, int_threshold, int_default_left, int_left_slot,
            int_right_slot, int_bit, leaf_ptr, leaf_depth, leaf_features, leaf_table_ptr, table,
        )
        for r in range(r0, r1):
            for f in range(nf):
                out[r, f] = acc[r - r0, f]
            out[r, nf] = bias


def contributions(model: TreeShapModel, X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
    """SHAP values of each row of ``X``: float32 array ``(n, n_features + 1)``, the bias last.

    Equal to ``booster.predict(xgb.DMatrix(X), pred_contribs=True)`` within float32 rounding; each row sums
    to the output margin. ``X`` is cast to float32 (NaN = missing). ``n_threads``: threads to use (default:
    numba's current setting, all cores); 1, or fewer than ``SERIAL_BELOW`` rows, runs without the thread
    pool, which is also safe to call from several Python threads at once.
    """
    Xf = np.ascontiguousarray(X, dtype=np.float32)
    if Xf.ndim != 2 or Xf.shape[1] != model.n_features:
        raise ValueError(f"TreeSHAP: X has shape {Xf.shape}; the model expects {model.n_features} columns")
    n = Xf.shape[0]
    out = np.empty((n, model.n_features + 1), dtype=np.float32)
    args = (
        Xf, out, np.float32(model.expected_value), BLOCK_ROWS, model.max_slots, model.int_ptr, model.int_feature,
        model.int_threshold, model.int_default_left, model.int_left_slot, model.int_right_slot, model.int_bit,
        model.leaf_ptr, model.leaf_depth, model.leaf_features, model.leaf_table_ptr, model.table,
    )
    if n == 0:
        return out
    if (n_threads is not None and n_threads <= 1) or n < SERIAL_BELOW:
        _contrib_serial(*args)
        return out
    previous = numba.get_num_threads()
    wanted = previous if n_threads is None else min(int(n_threads), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(wanted)
    try:
        _contrib_parallel(*args)
    finally:
        numba.set_num_threads(previous)
    return out
