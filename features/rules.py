"""A small rule language for CRM conditions, evaluated vectorised over a pandas DataFrame.

Shared by tags, audiences and (later) next-best-action, routing and BANT rules. A rule such as::

    rfm_segment in [Champions, Loyal] and (churn_grade == A or not tag:新客) and member_level >= gold

is tokenized, parsed by recursive descent into a tree of a few allow-listed node classes, checked against
the fields the caller allows (and their kinds), and evaluated column-wise: every node gives one boolean
NumPy array over the frame's rows. Nothing is ever handed to Python's ``eval``, ``exec``, ``compile`` or
``ast``; a word that is not a known field, tag or literal is an error naming the rule and the position.

Grammar (keywords ``and``, ``or``, ``not``, ``in``, ``true``, ``false`` in any case)::

    rule       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | "tag:" NAME | FIELD [ OP value | ["not"] "in" "[" value ("," value)* "]" ]
    OP         := "==" | "!=" | "<" | "<=" | ">" | ">="
    value      := NUMBER | 'quoted' | "quoted" | BAREWORD | true | false

A FIELD on its own must be a boolean field. Missing values (NaN / NA) make every comparison false,
including ``!=`` (``not`` then turns that false into true). An *ordered* field (e.g. member levels
``none < silver < gold < platinum``) compares by position in its order; other text fields allow only
``==``, ``!=`` and ``in``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.messages import M_

__all__ = [
    "FieldSpec",
    "Rule",
    "RuleError",
    "compile_rule",
    "fields_of_frame",
    "parse_rule",
    "quote_value",
]

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
MAX_RULE_CHARS = 4000
MAX_DEPTH = 64


class RuleError(ValueError):
    """A rule that does not parse or refers to something unknown; names the rule and the character position."""

    def __init__(self, rule_name: str, text: str, pos: int, message: str):
        self.rule_name = rule_name
        self.text = text
        self.pos = pos
        self.message = message
        caret = f"\n    {text}\n    {' ' * pos}^" if "\n" not in text and len(text) <= 200 else ""
        super().__init__(M_("{rule_name}: rule error at character {position}: {message}{caret}",
                            rule_name=rule_name, position=pos + 1, message=message, caret=caret))

    def __reduce__(self) -> tuple[type[RuleError], tuple[str, str, int, str]]:  # picklable (worker processes)
        return type(self), (self.rule_name, self.text, self.pos, self.message)


@dataclass(frozen=True)
class FieldSpec:
    """What a rule may do with a field: ``kind`` is number, text, bool or ordered (``order`` low → high)."""

    kind: str
    order: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("number", "text", "bool", "ordered"):
            raise ValueError(f"FieldSpec: unknown kind {self.kind!r}")
        if self.kind == "ordered" and not self.order:
            raise ValueError("FieldSpec: an ordered field needs its order")


# --------------------------------------------------------------------------------------------------------
# tokens


@dataclass(frozen=True)
class _Tok:
    kind: str  # LP RP LB RB COMMA OP NUM STR WORD TAG KW END
    value: str
    pos: int


_NUM = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
_WORD = re.compile(r"[^\s()\[\],=!<>'\"]+")
_PUNCT = {"(": "LP", ")": "RP", "[": "LB", "]": "RB", ",": "COMMA"}


def _tokenize(text: str, name: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in _PUNCT:
            toks.append(_Tok(_PUNCT[ch], ch, i))
            i += 1
            continue
        op = next((o for o in OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            toks.append(_Tok("OP", op, i))
            i += len(op)
            continue
        if ch in "=!":
            raise RuleError(name, text, i, M_("unknown operator {ch!r} (use == != < <= > >=)", ch=ch))
        if ch in "'\"":
            j = text.find(ch, i + 1)
            if j < 0:
                raise RuleError(name, text, i, M_("quoted text is not closed"))
            toks.append(_Tok("STR", text[i + 1 : j], i))
            i = j + 1
            continue
        m = _NUM.match(text, i)
        if m and (m.end() == n or not _WORD.match(text[m.end()])):
            toks.append(_Tok("NUM", m.group(0), i))
            i = m.end()
            continue
        m = _WORD.match(text, i)
        assert m is not None  # every other character starts a word
        word = m.group(0)
        if word.lower().startswith("tag:"):
            tag = word[4:]
            end = m.end()
            if not tag and end < n and text[end] in "'\"":
                j = text.find(text[end], end + 1)
                if j < 0:
                    raise RuleError(name, text, end, M_("quoted tag name is not closed"))
                tag, end = text[end + 1 : j], j + 1
            if not tag:
                raise RuleError(name, text, i, M_("tag: needs a tag name"))
            toks.append(_Tok("TAG", tag, i))
            i = end
            continue
        toks.append(_Tok("KW" if word.lower() in KEYWORDS else "WORD", word, i))
        i = m.end()
    toks.append(_Tok("END", "", n))
    return toks


# --------------------------------------------------------------------------------------------------------
# the expression tree (the only node classes a rule can become)


@dataclass(frozen=True)
class Value:
    """A literal: ``text`` as written, ``number`` when it was a number token, ``boolean`` for true/false."""

    text: str
    pos: int
    number: float | None = None
    boolean: bool | None = None


@dataclass(frozen=True)
class And:
    """Both sides hold."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    """Either side holds."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    """The operand does not hold."""

    operand: Node


@dataclass(frozen=True)
class TagRef:
    """``tag:NAME``: the customer carries tag NAME."""

    name: str
    pos: int


@dataclass(frozen=True)
class Compare:
    """``field OP value``."""

    field: str
    op: str
    value: Value
    pos: int


@dataclass(frozen=True)
class InList:
    """``field in [v, ...]`` (``negate``: ``not in``)."""

    field: str
    values: tuple[Value, ...]
    negate: bool
    pos: int


@dataclass(frozen=True)
class Flag:
    """A boolean field on its own."""

    field: str
    pos: int


#: a node of a parsed rule's expression tree
Node = And | Or | Not | TagRef | Compare | InList | Flag


class _Parser:
    def __init__(self, text: str, name: str):
        self.text, self.name = text, name
        self.toks = _tokenize(text, name)
        self.i = 0
        self.depth = 0

    def err(self, tok: _Tok, msg: str) -> RuleError:
        return RuleError(self.name, self.text, tok.pos, msg)

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def kw(self, word: str) -> bool:
        return self.tok.kind == "KW" and self.tok.value.lower() == word

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def parse(self) -> Node:
        if self.tok.kind == "END":
            raise self.err(self.tok, M_("empty rule"))
        node = self.or_expr()
        if self.tok.kind != "END":
            raise self.err(self.tok, M_("unexpected {what} (expected and, or or the end of the rule)",
                                        what=self._what(self.tok)))
        return node

    def _what(self, t: _Tok) -> str:
        return "end of rule" if t.kind == "END" else repr(t.value)

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.kw("or"):
            self.take()
            node = Or(node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.kw("and"):
            self.take()
            node = And(node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self.kw("not"):
            self.take()
            return Not(self._nested(self.not_expr))
        return self.primary()

    def _nested(self, fn: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.err(self.tok, M_("rule nests deeper than {max_depth} levels", max_depth=MAX_DEPTH))
        try:
            return fn()
        finally:
            self.depth -= 1

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "LP":
            self.take()
            node = self._nested(self.or_expr)
            if self.tok.kind != "RP":
                raise self.err(
                    self.tok, M_("expected ')' to close the '(' at character {position}, got {what}",
                                 position=t.pos + 1, what=self._what(self.tok))
                )
            self.take()
            return node
        if t.kind == "TAG":
            self.take()
            return TagRef(t.value, t.pos)
        if t.kind != "WORD":
            raise self.err(t, M_("expected a field, tag:NAME, 'not' or '(', got {what}", what=self._what(t)))
        self.take()
        nxt = self.tok
        if nxt.kind == "OP":
            self.take()
            return Compare(t.value, nxt.value, self.value(), t.pos)
        negate = False
        if self.kw("not") and self.toks[self.i + 1].kind == "KW" and self.toks[self.i + 1].value.lower() == "in":
            self.take()
            negate = True
        if self.kw("in"):
            self.take()
            return InList(t.value, self.value_list(), negate, t.pos)
        if nxt.kind in ("END", "RP") or (nxt.kind == "KW" and nxt.value.lower() in ("and", "or")):
            return Flag(t.value, t.pos)
        raise self.err(
            nxt, M_("expected an operator (== != < <= > >=) or 'in' after field {field!r}, got {what}", field=t.value,
                    what=self._what(nxt))
        )

    def value(self) -> Value:
        t = self.tok
        if t.kind == "NUM":
            self.take()
            return Value(t.value, t.pos, number=float(t.value))
        if t.kind == "STR":
            self.take()
            return Value(t.value, t.pos)
        if t.kind == "WORD":
            self.take()
            return Value(t.value, t.pos)
        if t.kind == "KW" and t.value.lower() in ("true", "false"):
            self.take()
            return Value(t.value, t.pos, boolean=t.value.lower() == "true")
        raise self.err(t, M_("expected a value (number, word or quoted text), got {what}", what=self._what(t)))

    def value_list(self) -> tuple[Value, ...]:
        if self.tok.kind != "LB":
            raise self.err(self.tok, M_("expected '[' after 'in', got {what}", what=self._what(self.tok)))
        self.take()
        values = [self.value()]
        while self.tok.kind == "COMMA":
            self.take()
            values.append(self.value())
        if self.tok.kind != "RB":
            raise self.err(self.tok, M_("expected ',' or ']' in the list, got {what}", what=self._what(self.tok)))
        self.take()
        return tuple(values)


def parse_rule(text: str, name: str = "rule") -> Node:
    """Parse ``text`` into an expression tree (no field check); a syntax error is a :class:`RuleError`."""
    if not isinstance(text, str):
        raise RuleError(name, str(text), 0, M_("a rule must be text"))
    if len(text) > MAX_RULE_CHARS:
        raise RuleError(name, text[:80], 0, M_("rule longer than {max_chars} characters", max_chars=MAX_RULE_CHARS))
    return _Parser(text, name).parse()


def _walk(node: Node) -> Iterator[Node]:
    yield node
    if isinstance(node, And | Or):
        yield from _walk(node.left)
        yield from _walk(node.right)
    elif isinstance(node, Not):
        yield from _walk(node.operand)


# --------------------------------------------------------------------------------------------------------
# checked, evaluable rules


@dataclass
class Rule:
    """A parsed and checked rule: :meth:`evaluate` gives a boolean array over a DataFrame's rows."""

    name: str
    text: str
    tree: Node
    fields: dict[str, FieldSpec] = field(default_factory=dict)

    @property
    def field_names(self) -> list[str]:
        """Fields the rule reads, in order of first use."""
        return list(dict.fromkeys(n.field for n in _walk(self.tree) if isinstance(n, Compare | InList | Flag)))

    @property
    def tag_names(self) -> list[str]:
        """Tags the rule reads (``tag:NAME``), in order of first use."""
        return list(dict.fromkeys(n.name for n in _walk(self.tree) if isinstance(n, TagRef)))

    def evaluate(
        self, df: pd.DataFrame, tags: Mapping[str, np.ndarray] | None = None, cache: dict | None = None
    ) -> np.ndarray:
        """Boolean array, one value per row of ``df``; ``tags`` maps tag name → boolean array of the same length.

        ``cache`` (a dict) shares converted columns between rules evaluated over the same ``df``.
        """
        missing = [f for f in self.field_names if f not in df.columns]
        if missing:
            raise RuleError(self.name, self.text, 0,
                            M_("field(s) {fields} missing from the data", fields=", ".join(missing)))
        return _eval(self.tree, df, tags or {}, self, {} if cache is None else cache)


def compile_rule(
    text: str,
    fields: Mapping[str, FieldSpec],
    tags: set[str] | frozenset[str] | None = None,
    name: str = "rule",
    hint: str = "",
) -> Rule:
    """Parse ``text`` and check every field, tag and literal against the allow-lists.

    ``fields`` maps each allowed field to its :class:`FieldSpec`; ``tags`` is the set of tags the rule may
    name (None: no ``tag:`` allowed). ``hint`` is appended to an unknown-field error (e.g. which option
    provides the missing columns).
    """
    tree = parse_rule(text, name)
    for node in _walk(tree):
        if isinstance(node, TagRef):
            if tags is None or node.name not in tags:
                known = (M_("no tags are available here") if not tags
                         else M_("known: {tags}", tags=", ".join(sorted(tags)[:20])))
                raise RuleError(name, text, node.pos, M_("unknown tag {tag!r} ({known})", tag=node.name, known=known))
            continue
        if not isinstance(node, Compare | InList | Flag):
            continue
        spec = fields.get(node.field)
        if spec is None:
            near = sorted(fields)[:30]
            raise RuleError(
                name,
                text,
                node.pos,
                M_("unknown field {field!r}{hint} (available: {available})", field=node.field, hint=hint,
                   available=", ".join(near) + (", …" if len(fields) > 30 else "")),
            )
        if isinstance(node, Flag):
            if spec.kind != "bool":
                raise RuleError(
                    name, text, node.pos,
                    M_("field {field!r} is {kind}, not true/false: compare it", field=node.field, kind=spec.kind),
                )
            continue
        values = (node.value,) if isinstance(node, Compare) else node.values
        if isinstance(node, Compare) and node.op not in ("==", "!=") and spec.kind in ("text", "bool"):
            raise RuleError(
                name, text, node.value.pos,
                M_("{op} needs a number or ordered field; {field!r} is {kind}", op=node.op, field=node.field,
                   kind=spec.kind),
            )
        for v in values:
            if spec.kind == "number" and v.number is None:
                raise RuleError(name, text, v.pos,
                                M_("field {field!r} is a number; {value!r} is not", field=node.field, value=v.text))
            if spec.kind == "bool" and v.boolean is None:
                raise RuleError(name, text, v.pos, M_("field {field!r} is true/false; {value!r} is neither",
                                                      field=node.field, value=v.text))
            if spec.kind == "ordered" and v.text not in spec.order:
                raise RuleError(
                    name, text, v.pos,
                    M_("{value!r} is not a value of {field!r} ({order})", value=v.text, field=node.field,
                       order=" < ".join(spec.order)),
                )
    used = {n.field for n in _walk(tree) if isinstance(n, Compare | InList | Flag)}
    return Rule(name=name, text=text, tree=tree, fields={f: fields[f] for f in used})


def _eval(node: Node, df: pd.DataFrame, tags: Mapping[str, np.ndarray], rule: Rule, cache: dict) -> np.ndarray:
    if isinstance(node, And):
        return _eval(node.left, df, tags, rule, cache) & _eval(node.right, df, tags, rule, cache)
    if isinstance(node, Or):
        return _eval(node.left, df, tags, rule, cache) | _eval(node.right, df, tags, rule, cache)
    if isinstance(node, Not):
        return ~_eval(node.operand, df, tags, rule, cache)
    if isinstance(node, TagRef):
        if node.name not in tags:
            raise RuleError(rule.name, rule.text, node.pos,
                            M_("tag {tag!r} was not computed before this rule", tag=node.name))
        arr = np.asarray(tags[node.name], dtype=bool)
        if len(arr) != len(df):
            raise ValueError(f"{rule.name}: tag {node.name!r} has {len(arr)} values for {len(df)} rows")
        return arr
    spec = rule.fields[node.field]
    col = df[node.field]
    key: tuple[object, ...]
    if isinstance(node, Flag):
        key = ("flag", node.field)
        if key not in cache:
            cache[key] = _bool_array(col)
        return cache[key].copy()
    if spec.kind == "ordered":
        key = ("rank", node.field, spec.order)
        if key not in cache:
            cache[key] = pd.Categorical(col, categories=list(spec.order)).codes.astype(np.int16)
        codes = cache[key]
        known = codes >= 0
        if isinstance(node, InList):
            hit = np.isin(codes, [spec.order.index(v.text) for v in node.values]) & known
            return known & ~hit if node.negate else hit
        return known & _cmp(codes, node.op, spec.order.index(node.value.text))
    if spec.kind == "number":
        key = ("num", node.field)
        if key not in cache:
            cache[key] = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        x = cache[key]
        known = ~np.isnan(x)
        if isinstance(node, InList):
            hit = np.isin(x, [_number(v) for v in node.values]) & known
            return known & ~hit if node.negate else hit
        with np.errstate(invalid="ignore"):
            return known & _cmp(x, node.op, _number(node.value))
    if spec.kind == "bool":
        key = ("bool", node.field)
        if key not in cache:
            b = col.astype("boolean")
            cache[key] = (b.notna().to_numpy(), b.fillna(False).to_numpy(dtype=bool))
        known, x = cache[key]
        wanted = [_boolean(v) for v in ((node.value,) if isinstance(node, Compare) else node.values)]
        hit = known & (np.isin(x, wanted))
        negate = (isinstance(node, Compare) and node.op == "!=") or (isinstance(node, InList) and node.negate)
        return known & ~hit if negate else hit
    # text: the column is factorised once (codes, distinct values) for all rules; a test looks at the few
    # distinct values, then picks rows by code
    key = ("text", node.field)
    if key not in cache:
        cache[key] = pd.factorize(col)
    codes, uniques = cache[key]
    known = codes >= 0
    values = [v.text for v in ((node.value,) if isinstance(node, Compare) else node.values)]
    lookup = np.zeros(len(uniques) + 1, dtype=bool)  # the last slot is for code -1 (missing)
    lookup[:-1] = pd.Index(uniques).isin(values)
    hit = lookup[codes]
    negate = (isinstance(node, Compare) and node.op == "!=") or (isinstance(node, InList) and node.negate)
    return known & ~hit if negate else hit


def _number(v: Value) -> float:
    if v.number is None:  # compile_rule rejects a non-number against a number field
        raise AssertionError(f"{v.text!r} is not a number")
    return v.number


def _boolean(v: Value) -> bool:
    if v.boolean is None:  # compile_rule rejects a non-true/false value against a true/false field
        raise AssertionError(f"{v.text!r} is not true/false")
    return v.boolean


def _cmp(x: np.ndarray, op: str, v: float) -> np.ndarray:
    if op == "==":
        return x == v
    if op == "!=":
        return x != v
    if op == "<":
        return x < v
    if op == "<=":
        return x <= v
    if op == ">":
        return x > v
    return x >= v


def _bool_array(col: pd.Series) -> np.ndarray:
    return col.astype("boolean").fillna(False).to_numpy(dtype=bool)


def fields_of_frame(
    df: pd.DataFrame,
    ordered: Mapping[str, tuple[str, ...]] | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> dict[str, FieldSpec]:
    """Field specs from a frame's dtypes: numbers, booleans and text; ``ordered`` overrides named columns."""
    ordered = dict(ordered or {})
    out: dict[str, FieldSpec] = {}
    for c in df.columns:
        if c in exclude:
            continue
        if c in ordered:
            out[c] = FieldSpec("ordered", tuple(ordered[c]))
        elif pd.api.types.is_bool_dtype(df[c]):
            out[c] = FieldSpec("bool")
        elif pd.api.types.is_numeric_dtype(df[c]) and not isinstance(df[c].dtype, pd.CategoricalDtype):
            out[c] = FieldSpec("number")
        else:
            out[c] = FieldSpec("text")
    return out


def quote_value(v: str) -> str:
    """``v`` written as a rule literal (quoted when it is not a plain word)."""
    s = str(v)
    if _WORD.fullmatch(s) and s.lower() not in KEYWORDS and not s.lower().startswith("tag:") and not _NUM.fullmatch(s):
        return s
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    raise ValueError(f"value {s!r} contains both quote characters and cannot be written in a rule")
