"""Plain functions between a request and a response: feature rows → matrix, probabilities → scores,
grades and reasons, request checks and error messages. No server needed; unit tests call them directly.

The serving hot path avoids pandas: :class:`FeatureInput` checks a request's feature dicts or table (a string
for a number, an unknown feature name: a 422 naming lead and feature), gathers them into column arrays and
hands those to the model's one encoder (``training.model.FeaturePreprocessor.transform_arrays``); reasons
come from ``training.explain`` (one ``ReasonFolder``, the same as batch and ``CRMScorer.explain``).
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from features.messages import M_
from serving.http.records import TEXT_TYPES, FeatureBlock
from serving.i18n import _, localized, pydantic_message, translate
from training.explain import jsonable as clean_value
from training.scores import to_grade, to_score

#: Tables with at least this many rows take the vectorised path of ``FeatureInput.build_table`` (below it the
#: per-value path is as fast: pyarrow's fixed cost is ~25 µs).
_FAST_TABLE_ROWS = 32
#: Marks of pydantic union members in an error location (the members of ``schemas.FeatureValue``).
_UNION_TAGS = {"float", "bool", "str", "constrained-float"}


class RequestError(ValueError):
    """A request the service refuses: HTTP ``status``, a message naming the field and the reason."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self._derived = not errors
        self.errors = errors or [{"field": message.split(":", 1)[0], "reason": message.split(":", 1)[-1].strip()}]

    def localized(self) -> tuple[str, list[dict[str, str]]]:
        """(message, errors) in the current language: the message through the catalogue (when raised with
        ``M_``); an ``errors`` item made from the message gets its reason from the translated message too (the
        field name stays as it is)."""
        text = localized(self.message)
        if not self._derived:
            return text, self.errors
        field = self.errors[0]["field"]
        if text == self.message:
            return text, self.errors
        return text, [{"field": field, "reason": re.sub(rf"^{re.escape(field)}\s*[:：]\s*", "", text)}]


# ------------------------------------------------------------------------------------------ validation
#: An unknown field name echoed in a 422 as it was sent only when it looks like a field name (it could be PII).
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")


def safe_name(name: str) -> str:
    """``name`` when it looks like a field name, else ``<name of N characters>`` (a key sent by the client may be
    a phone number or a customer's name; it never comes back in an error or a log)."""
    return name if _SAFE_NAME.match(name) else f"<name of {len(name)} characters>"


def field_path(loc: Sequence[Any]) -> str:
    """A pydantic error location as a readable path: ``("leads", 0, "features", "age")`` → ``leads[0].features.age``.

    Keys that are not plain field names (a client's dict key: possibly PII) read ``<name of N characters>``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = safe_name(str(part))
            out += f".{name}" if out else name
    return out or "body"


def safe_names(names: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` unknown names for an error message: a name that is not a plain identifier (at most 64
    characters of letters, digits, ``_`` and ``.``) is replaced by ``<name of N characters>``, so a phone
    number or a customer name sent as a key never comes back in the error or a log."""
    return ", ".join(safe_name(str(n)) for n in names[:limit])


def format_validation_errors(errors: Sequence[Mapping[str, Any]], limit: int = 20) -> tuple[int, str, list[dict]]:
    """Pydantic errors (``include_input=False``) → (status, one-line message, [{field, reason}]).

    Malformed JSON is a 400; everything else a 422. Union members of one value are folded into one
    error, so a bad feature value reads ``leads[0].features.age: must be a finite number, ...``. No
    input value is ever echoed (values may be PII).
    """
    if any(e.get("type") == "json_invalid" for e in errors):
        msg = next(e for e in errors if e.get("type") == "json_invalid")["msg"]
        reason = msg.replace("Invalid JSON: ", "")
        return 400, _("body: not valid JSON ({reason})").format(reason=reason), [
            {"field": "body", "reason": _("not valid JSON: {reason}").format(reason=reason)}
        ]
    folded: dict[str, str] = {}
    for e in errors:
        loc = list(e.get("loc", ()))
        if loc and loc[-1] in _UNION_TAGS:
            path = field_path(loc[:-1])
            if e.get("type") == "finite_number":
                folded[path] = _("must be a finite number (NaN and infinity are not accepted)")
            else:
                folded.setdefault(path, _("must be a finite number, true/false, a string or null"))
            continue
        path = field_path(loc)
        msg = str(e.get("msg", "invalid value"))
        if e.get("type") == "extra_forbidden":
            msg = _("unknown field (not part of the request schema)")
        elif e.get("type") == "missing":
            msg = _("required field is missing")
        elif msg.startswith("Value error, "):
            msg = validator_message(msg[len("Value error, ") :])
        else:
            msg = pydantic_message(dict(e))
        folded.setdefault(path, msg)
    items = [{"field": k, "reason": v} for k, v in folded.items()]
    first = items[0] if items else {"field": "body", "reason": _("invalid request")}
    more = _(" (and {n} more)").format(n=len(items) - 1) if len(items) > 1 else ""
    return 422, _("{field}: {reason}").format(field=first["field"], reason=first["reason"]) + more, items[:limit]


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts)), re.S)


def validator_message(text: str) -> str:
    """A request validator's message (``serving.http.schemas``: pydantic returns it as text) in the current
    language: a constant message is looked up as it is, one with fields by its template
    (``schemas.VALIDATOR_TEMPLATES``)."""
    from serving.http.schemas import VALIDATOR_TEMPLATES

    found = translate(text)
    if found != text:
        return found
    for template in VALIDATOR_TEMPLATES:
        m = _template_pattern(template).fullmatch(text)
        if m:
            return _(template).format(**m.groupdict())
    return text


def check_batch_size(n: int, limit: int, what: str = "leads") -> None:
    """Refuse empty and oversized batches with a message naming the field."""
    if n == 0:
        raise RequestError(422, M_("{what}: empty list; send at least one", what=what))
    if n > limit:
        raise RequestError(413, M_("{what}: {n:,} items exceed the limit of {limit:,} per request", what=what, n=n,
                                   limit=limit))


# -------------------------------------------------------------------------------------- feature matrix
class FeatureInput:
    """Request checks before the encoder, then the encoder: feature dicts or a feature table → model matrix.

    Refuses, instead of coercing, a string for a numeric feature and a feature name the model does not know;
    what passes is gathered into a numeric block and per-feature category values and encoded by the model's
    ``FeaturePreprocessor`` (:meth:`~training.model.FeaturePreprocessor.transform_arrays`), the same encoder
    training, batch and Spark use.
    """

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.feature_names = [str(c) for c in encoder.feature_names_in_]
        self.numeric = [str(c) for c in encoder.numeric_features_]
        self.categorical = [str(c) for c in encoder.categorical_features_]
        self._known = frozenset(self.feature_names)
        self._get_numeric = operator.itemgetter(*self.numeric) if len(self.numeric) > 1 else None
        self.n_columns = len(encoder.get_feature_names_out())

    def check(self, rows: Sequence[Mapping[str, Any]], field: str = "leads") -> None:
        """Refuse unknown feature names and non-numbers for numeric features (422 naming lead and feature)."""
        known = self._known
        covers = known.issuperset  # one C-level pass over the row's keys, no new set
        for i, row in enumerate(rows):
            if covers(row):
                continue
            extra = row.keys() - known
            if extra:
                names = safe_names(sorted(map(str, extra)))
                raise RequestError(
                    422,
                    M_("{path}: unknown feature(s) {names}; the model's features are listed by GET /model_info",
                       path=f"{field}[{i}].features", names=names),
                )

    def _numeric_values(self, row: Mapping[str, Any]) -> tuple | list:
        if self._get_numeric is not None:
            try:
                return self._get_numeric(row)
            except KeyError:  # some features absent: they are missing values
                pass
        return list(map(row.get, self.numeric))

    def _numeric_block(self, rows: Sequence[Mapping[str, Any]], field: str) -> np.ndarray:
        names = self.numeric
        if not names:
            return np.zeros((len(rows), 0))
        get = self._get_numeric
        try:
            lists = list(map(get, rows)) if get is not None else None  # the common case: every feature given
        except KeyError:
            lists = None
        if lists is None:
            lists = [self._numeric_values(row) for row in rows]
        if len(rows) >= _FAST_TABLE_ROWS:
            flat = _floats(itertools.chain.from_iterable(lists))  # strings refused: the loop below names one
            if flat is not None:
                return flat.reshape(len(rows), len(names))
        # strings are refused, not coerced (np.array would turn "2" into 2.0 and "inf" into inf)
        if str in set(map(type, itertools.chain.from_iterable(lists))):
            for i, vals in enumerate(lists):
                for j, v in enumerate(vals):
                    if isinstance(v, str):
                        raise RequestError(
                            422, M_("{path}: must be a number, true/false or null",
                                    path=f"{field}[{i}].features.{names[j]}"),
                        )
        return np.array(lists, dtype="float64")

    def build(
        self, rows: Sequence[Mapping[str, Any]], field: str = "leads"
    ) -> tuple[np.ndarray, dict[int, list[str]], FeatureBlock]:
        """The model matrix of ``rows``, the categorical features whose value is unknown (by row, only rows
        that have some), and the raw input features (for the drift records)."""
        raw = self._numeric_block(rows, field)
        cat_values = {c: [row.get(c) for row in rows] for c in self.categorical}
        return self._assemble(raw, cat_values)

    def build_table(
        self, columns: Sequence[str], rows: Sequence[Sequence[Any]], field: str = "table"
    ) -> tuple[np.ndarray, dict[int, list[str]], FeatureBlock]:
        """Like :meth:`build` for a columnar table (``schemas.FeatureTable``, whose values are finite numbers,
        true/false, strings or null): numeric features must not be strings, categorical ones not true/false."""
        extra = [c for c in columns if c not in self._known]
        if extra:
            raise RequestError(
                422, M_("{path}: unknown feature(s) {names}; GET /model_info lists them", path=f"{field}.columns",
                        names=safe_names(extra))
            )
        n = len(rows)
        if n >= _FAST_TABLE_ROWS:
            fast = self._from_rows(rows, {c: j for j, c in enumerate(columns)}, len(columns))
            if fast is not None:
                return fast
        # the careful path: finds the first bad value (in row order) and names it
        cols = list(zip(*rows, strict=False)) if n else [() for _ in columns]  # column-wise tuples
        pos = {c: j for j, c in enumerate(columns)}
        raw = np.full((n, len(self.numeric)), np.nan)
        pairs = [(o, pos[c]) for o, c in enumerate(self.numeric) if c in pos]
        if pairs and n:
            src = [cols[j] for _, j in pairs]
            names = [self.numeric[o] for o, _ in pairs]
            kinds = set(map(type, itertools.chain.from_iterable(src)))
            if kinds - {float, int, bool, type(None)}:
                i, j = _first(src, lambda v: not (v is None or isinstance(v, (float, int, bool))))
                raise RequestError(422, M_("{path}: must be a number, true/false or null",
                                           path=f"{field}.rows[{i}].{names[j]}"))
            num = np.array(src, dtype="float64").T  # None → NaN, true/false → 1/0
            if np.isinf(num).any():  # NaN and infinity are refused by schemas.FeatureTable already
                i, j = np.argwhere(np.isinf(num))[0]
                raise RequestError(
                    422, M_("{path}: must be a finite number (NaN and infinity are not accepted)",
                            path=f"{field}.rows[{i}].{names[j]}")
                )
            raw[:, [o for o, _ in pairs]] = num
        cat_values: dict[str, Sequence[Any]] = {}
        for c in self.categorical:
            if c not in pos:
                cat_values[c] = [None] * n
                continue
            values = cols[pos[c]]
            if set(map(type, values)) - {str, type(None)}:
                for i, v in enumerate(values):
                    if not (v is None or isinstance(v, (str, int, float))) or (
                        isinstance(v, float) and not math.isfinite(v)
                    ):
                        raise RequestError(422, M_("{path}: must be a string, a number or null",
                                                   path=f"{field}.rows[{i}].{c}"))
            cat_values[c] = values
        return self._assemble(raw, cat_values)

    def _from_rows(
        self, rows: Sequence[Sequence[Any]], pos: Mapping[str, int], k: int
    ) -> tuple[np.ndarray, dict[int, list[str]], FeatureBlock] | None:
        """The fast path of :meth:`build_table`: rows of ``k`` values, feature ``c`` at position ``pos[c]`` → model
        matrix, unknown categories, raw features (same results as the careful path).

        The numeric values are taken from each row in one C-level step (``operator.itemgetter``, or a slice when
        they are adjacent) and converted and type-checked in one C++ pass (``pyarrow.array`` to float64: None →
        missing, true/false → 1/0, and it refuses strings, even numeric-looking ones, and any other object); no
        (rows × columns) object matrix is built. Returns None, and the careful path (which names the first bad
        value, or converts a number given for a categorical feature) takes over, when the rows are not all ``k``
        long, a numeric value is not a finite number, true/false or null, or a categorical value is not a string
        or null.
        """
        if set(map(len, rows)) != {k}:
            return None
        n = len(rows)
        pairs = [(o, pos[c]) for o, c in enumerate(self.numeric) if c in pos]
        # the raw block is column-major (Fortran order): the drift records write it column by column, and
        # contiguous columns make that flush cheaper (2.2–4.5 → 1.8–2.2 ms of CPU per 1,000 rows, measured)
        if len(pairs) == len(self.numeric):
            raw = None
        else:
            raw = np.full((n, len(self.numeric)), np.nan, order="F")
        if pairs:
            flat = _floats(itertools.chain.from_iterable(map(_picker([j for _, j in pairs]), rows)))
            if flat is None:
                return None
            num = np.asfortranarray(flat.reshape(n, len(pairs)))
            if np.isinf(num).any():
                return None
            if raw is None:
                raw = num
            else:
                raw[:, [o for o, _ in pairs]] = num
        elif raw is None:
            raw = np.zeros((n, 0))
        given = [c for c in self.categorical if c in pos]
        columns = zip(*map(_picker([pos[c] for c in given]), rows), strict=True) if given else iter(())
        cat_values: dict[str, Sequence[Any]] = {c: list(col) for c, col in zip(given, columns, strict=False)}
        for c in self.categorical:
            if c not in cat_values:
                cat_values[c] = [None] * n
            elif not set(map(type, cat_values[c])) <= TEXT_TYPES:
                return None
        return self._assemble(raw, cat_values)

    def _assemble(
        self, raw: np.ndarray, cat_values: Mapping[str, Sequence[Any]]
    ) -> tuple[np.ndarray, dict[int, list[str]], FeatureBlock]:
        """Checked column arrays → (model matrix, unknown categorical features by row, raw feature block)."""
        recorded: dict[str, Sequence[Any]] = {}
        for c in self.categorical:
            values = cat_values[c]
            if set(map(type, values)) <= TEXT_TYPES:  # already as recorded
                recorded[c] = values if isinstance(values, list) else list(values)
            else:
                recorded[c] = [v if v is None or type(v) is str else clean_category(v) for v in values]
        Z, unknown_mask = self.encoder.transform_arrays(raw, recorded, return_unknown=True)
        unknown: dict[int, list[str]] = {}  # row → unknown categorical features (only rows that have some)
        for i, k in zip(*np.nonzero(unknown_mask), strict=True):
            unknown.setdefault(int(i), []).append(self.categorical[k])
        return Z, unknown, FeatureBlock(self.numeric, raw, recorded)


def _floats(values: Any) -> np.ndarray | None:
    """``values`` as float64 in one C++ pass (``pyarrow.array``: numbers and true/false converted, None → NaN), or
    None when one is refused (any string, even a numeric-looking one, or another object)."""
    import pyarrow as pa

    try:
        arr = pa.array(list(values), type=pa.float64(), from_pandas=False)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    return arr.to_numpy(zero_copy_only=False)


def _picker(positions: Sequence[int]) -> Any:
    """A function of a row → the values at ``positions`` as a sequence, in C (a slice when they are adjacent)."""
    if len(positions) > 1 and list(positions) == list(range(positions[0], positions[0] + len(positions))):
        return operator.itemgetter(slice(positions[0], positions[0] + len(positions)))
    if len(positions) == 1:
        j = positions[0]
        return lambda row: (row[j],)
    return operator.itemgetter(*positions)


def _first(columns: Sequence[Sequence[Any]], bad: Any) -> tuple[int, int]:
    """(row, column) of the first value, in row order, of column-wise ``columns`` for which ``bad`` is true."""
    for i, row in enumerate(zip(*columns, strict=False)):
        for j, v in enumerate(row):
            if bad(v):
                return i, j
    return 0, 0


def clean_category(v: Any) -> str | None:
    """A categorical value as recorded: None for missing, else its string form (as the preprocessor sees it)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v if isinstance(v, str) else str(v)


def frame_to_rows(frame: Any) -> list[dict[str, Any]]:
    """Feature rows of a feature frame (the online builder's output) as dicts; NaN stays NaN."""
    return frame.to_dict("records")


# ------------------------------------------------------------------------------------------------ results
def score_and_grade(probability: np.ndarray, thresholds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities → integer scores 1–99 and grades A–D (``training.scores``)."""
    scores = to_score(probability)
    return scores, to_grade(scores, thresholds)


def build_lead_results(
    customer_ids: Sequence[str],
    probability: np.ndarray,
    thresholds: Sequence[int],
    reasons: Sequence[Mapping[str, Any]] | None,
    unknown: Mapping[int, Sequence[str]],
    model_name: str,
    model_version: str,
    scores: np.ndarray | None = None,
    grades: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The per-lead response objects (``schemas.LeadScore`` fields), in input order (scores and grades are
    computed from the probabilities unless given)."""
    if scores is None or grades is None:
        scores, grades = score_and_grade(probability, thresholds)
    probs = probability.tolist()
    scores_l = scores.tolist()
    grades_l = grades.tolist()
    return [
        {
            "customer_id": cid,
            "probability": probs[i],
            "score": scores_l[i],
            "grade": grades_l[i],
            "reasons": None if reasons is None else reasons[i],
            "unknown_categories": unknown.get(i, ()),
            "model": model_name,
            "model_version": model_version,
        }
        for i, cid in enumerate(customer_ids)
    ]


def build_segment_results(
    frame: Any, customer_ids: Sequence[str], horizon_days: int, model_name: str, model_version: str
) -> list[dict[str, Any]]:
    """Rows of the segmenter's output frame as ``schemas.SegmentResult`` objects, in input order."""
    n = int(horizon_days)
    out = []
    for i, rec in enumerate(frame.to_dict("records")):
        out.append(
            {
                "customer_id": customer_ids[i],
                "r_score": int(rec["r_score"]),
                "f_score": int(rec["f_score"]),
                "m_score": int(rec["m_score"]),
                "rfm_segment": str(rec["rfm_segment"]),
                "value_tier": str(rec["value_tier"]),
                "value_tier_zh": clean_value(rec.get("value_tier_zh")),
                "cluster": int(rec["cluster"]),
                "cluster_description": str(rec["cluster_description"]),
                "p_alive": clean_value(rec.get("p_alive")),
                "expected_purchases": clean_value(rec.get(f"expected_purchases_{n}d")),
                "expected_value": clean_value(rec.get(f"expected_value_{n}d")),
                "horizon_days": n,
                "model": model_name,
                "model_version": model_version,
            }
        )
    return out


# ------------------------------------------------------------------------------------ online features
def _profile_dict(profile: Any) -> dict[str, Any]:
    """A request profile as a contract row without PII (dropped before anything else sees it)."""
    from features.contract import PII_COLUMNS

    return profile.model_dump(exclude=set(PII_COLUMNS))


def _events_dict(events: Any) -> dict[str, list[dict[str, Any]]]:
    return {} if events is None else events.model_dump()


def tables_for_leads(
    profiles: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]], as_of: Any
) -> dict[str, Any]:
    """Contract tables of many leads at one ``as_of``: ``features.build.tables_from_records`` for a batch
    (same rules: a lead without ``created_at``, or created after ``as_of``, is new at ``as_of``)."""
    import pandas as pd

    from features.contract import coerce_types, empty_frame

    t = pd.Timestamp(as_of)
    cust_rows = []
    for p in profiles:
        cust = dict(p)
        if cust.get("created_at") in (None, "") or pd.Timestamp(cust["created_at"]) > t:
            cust["created_at"] = t
        cust_rows.append(cust)
    tables = {
        "customers": coerce_types(
            pd.DataFrame(cust_rows).reindex(columns=empty_frame("customers").columns), "customers"
        )
    }
    for name in ("interactions", "orders", "marketing_touches"):
        rows = [
            {**r, "customer_id": str(p["customer_id"])}
            for p, ev in zip(profiles, events, strict=True)
            for r in (ev or {}).get(name, [])
        ]
        frame = pd.DataFrame(rows).reindex(columns=empty_frame(name).columns) if rows else empty_frame(name)
        tables[name] = coerce_types(frame, name)
    return tables


def _group_by_as_of(items: Sequence[Any], now: Any) -> dict[Any, list[int]]:
    groups: dict[Any, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(it.as_of or now, []).append(i)
    return groups


def online_feature_rows(
    builder: Any, leads: Sequence[Any], now: Any, field_indexes: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Feature rows of profile leads (``schemas.Lead`` with a profile), in order.

    One lead: ``builder.transform_one`` (the dict ``features.build.build_online_features`` makes its one-row
    frame of: same values, same types, no frame). Several: their tables are assembled together
    (:func:`tables_for_leads`) and go through the same ``builder.transform`` once per ``as_of``. Leads sharing
    a customer id in one group are built one by one.
    """
    import pandas as pd

    from features.build import CRMSnapshot

    idx = list(field_indexes) if field_indexes is not None else list(range(len(leads)))
    out: list[dict[str, Any] | None] = [None] * len(leads)
    for as_of, members in _group_by_as_of(leads, now).items():
        profiles = [_profile_dict(leads[i].profile) for i in members]
        events = [_events_dict(leads[i].events) for i in members]
        ids = [str(p["customer_id"]) for p in profiles]
        try:
            if len(members) == 1 or len(set(ids)) < len(ids):
                for i, p, ev in zip(members, profiles, events, strict=True):
                    out[i] = builder.transform_one(p, ev, as_of)
                continue
            frame = builder.transform(CRMSnapshot(tables_for_leads(profiles, events, as_of), pd.Timestamp(as_of)))
            rows = frame_to_rows(frame.reindex(pd.Index(ids, dtype=frame.index.dtype)))
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            where = f"leads[{idx[members[0]]}]" if len(members) == 1 else "leads"
            raise RequestError(422, M_("{path}: cannot compute features from the profile and events ({error})",
                                       path=where, error=e)) from None
        for i, row in zip(members, rows, strict=True):
            out[i] = row
    return out  # type: ignore[return-value]


def segment_inputs(customers: Sequence[Any], now: Any, window_days: int) -> Any:
    """The segmenter's input frame (``training.segment.INPUT_DOC``) of ``schemas.Customer`` items, in order:
    precomputed summaries as given, profiles + events summarised online per ``as_of``."""
    import pandas as pd

    from training.segment import input_columns, summarise_customers

    cols = input_columns(window_days)
    known = set(cols) - {"customer_id"}
    records: list[dict[str, Any] | None] = [None] * len(customers)
    for i, c in enumerate(customers):
        if c.summary is not None:
            extra = set(c.summary) - known
            if extra:
                raise RequestError(
                    422,
                    M_("{path}: unknown field(s) {names}; expected {known}", path=f"customers[{i}].summary",
                       names=safe_names(sorted(extra)), known=", ".join(sorted(known))),
                )
            records[i] = {"customer_id": c.id, **c.summary}
    online = [c for c in customers if c.profile is not None]
    positions = [i for i, c in enumerate(customers) if c.profile is not None]
    for as_of, members in _group_by_as_of(online, now).items():
        profiles = [_profile_dict(online[k].profile) for k in members]
        events = [_events_dict(online[k].events) for k in members]
        ids = [str(p["customer_id"]) for p in profiles]
        try:
            if len(set(ids)) < len(ids):
                parts = [summarise_customers(tables_for_leads([p], [ev], as_of), as_of, window_days)
                         for p, ev in zip(profiles, events, strict=True)]
                summary = pd.concat(parts, ignore_index=True)
                recs = [r for r in summary.to_dict("records")]
            else:
                summary = summarise_customers(tables_for_leads(profiles, events, as_of), as_of, window_days)
                by_id = {str(r["customer_id"]): r for r in summary.to_dict("records")}
                recs = [by_id[cid] for cid in ids]
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            raise RequestError(
                422, M_("customers: cannot summarise the profile and events ({error})", error=e)
            ) from None
        for k, rec in zip(members, recs, strict=True):
            records[positions[k]] = {**rec, "customer_id": online[k].id}
    frame = pd.DataFrame.from_records(records).reindex(columns=cols)
    frame["customer_id"] = frame["customer_id"].astype("string")
    num = [c for c in cols if c != "customer_id"]
    frame[num] = frame[num].astype("float64")
    return frame
