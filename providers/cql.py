"""CQL2 filters evaluated in Python with pygeofilter's native backend, made safe for the public.

pygeoapi 0.21 hands providers a pygeofilter AST; its file-based providers ignore it.  Ours
check the AST first, then compile it once into a predicate over
``{property: value, geometry: shapely}`` dicts.  The checks are what keep a hostile filter a
400 instead of something worse:

* every property it names must be published (the collection's fields, plus ``geometry``), so a
  filter cannot reach hidden columns (``fid``, ``geom``…) and a typo gets the queryables;
* no function calls: pygeofilter's native backend writes a function's *name* into Python code
  it ``eval``\\ s, so ``exec('…') IS NULL`` would run arbitrary code on the server;
* a bounded size and depth (:data:`MAX_NODES`, :data:`MAX_DEPTH`): the compiled expression nests
  one Python parenthesis per level and Python refuses more than 200;
* ``LIKE`` runs on a linear-time matcher, not pygeofilter's regular expression, on which
  ``'%%%…%a'`` backtracks for minutes while holding the GIL (the whole server stops).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from pygeofilter import ast
from pygeofilter.backends.evaluator import handle
from pygeofilter.backends.native.evaluate import NativeEvaluator

#: geometry name a filter may use (the one pygeoapi's /queryables publishes)
GEOMETRY_NAMES = ("geometry",)
#: nodes (operators, properties, values) in one filter
MAX_NODES = 10_000
#: nesting of operators; a long OR chain of equalities is better written ``prop IN (…)``
MAX_DEPTH = 60


def parse_text(text: str) -> ast.Node:
    """A filter in CQL2 text (``S_INTERSECTS``, ``CASEI``…), or else in ECQL, which pygeoapi 0.21
    parses alone (``INTERSECTS``): the server declares CQL2 text, and old clients send ECQL."""
    from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
    from pygeofilter.parsers.ecql import parse as parse_ecql

    try:
        return parse_cql2_text(text)
    except Exception:  # noqa: BLE001 — not CQL2: ECQL's error is the one reported
        return parse_ecql(text)


def _walk(node: Any) -> Iterable[tuple[Any, int]]:
    """Every node of a filter AST with its depth, iteratively (no recursion limit)."""
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        yield current, depth
        if isinstance(current, ast.Node):
            stack.extend((child, depth + 1) for child in current.get_sub_nodes())
        elif isinstance(current, (list, tuple)):
            stack.extend((child, depth) for child in current)


def attributes(node: Any) -> set[str]:
    """Every property name a filter AST refers to."""
    return {n.name for n, _ in _walk(node) if isinstance(n, ast.Attribute)}


def check_filter(filterq: Any, fields: Iterable[str]) -> None:
    """ValueError (with the queryables) unless ``filterq`` is small, calls no function and
    names only published properties."""
    fields = sorted(fields)
    queryables = ", ".join([*fields, *GEOMETRY_NAMES])
    count, functions, deepest = 0, set(), 0
    for node, depth in _walk(filterq):
        count += 1
        deepest = max(deepest, depth)
        if count > MAX_NODES:
            raise ValueError(f"the filter has more than {MAX_NODES:,} terms; simplify it")
        if isinstance(node, ast.Function):
            functions.add(str(node.name))
    if deepest > MAX_DEPTH:
        raise ValueError(f"the filter nests {deepest} levels deep, more than {MAX_DEPTH}; "
                         "write long OR chains of equalities as `property IN (…)`")
    if functions:
        raise ValueError(
            f"function{'s' if len(functions) > 1 else ''} {', '.join(sorted(functions))} "
            "cannot be used: filters accept comparisons, LIKE, IN, BETWEEN, IS NULL and the "
            f"spatial and temporal operators on the queryable properties: {queryables}")
    unknown = sorted(attributes(filterq) - set(fields) - set(GEOMETRY_NAMES))
    if unknown:
        raise ValueError(
            f"unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} in the "
            f"filter; queryable properties: {queryables}")


class LikePattern:
    """A SQL ``LIKE`` pattern matched in O(len(pattern) × len(text)), with ``.match`` returning
    ``None`` on no match like a compiled regular expression (what the evaluator expects)."""

    def __init__(self, pattern: str, *, nocase: bool, wildcard: str, singlechar: str,
                 escapechar: str | None):
        self.nocase = nocase
        tokens: list[tuple[str, str]] = []  # ("lit", c) | ("one", "") | ("any", "")
        chars, i = str(pattern), 0
        while i < len(chars):
            char = chars[i]
            if escapechar and char == escapechar and i + 1 < len(chars):
                tokens.append(("lit", chars[i + 1]))
                i += 2
                continue
            if char == wildcard:
                if not tokens or tokens[-1][0] != "any":  # '%%' is '%'
                    tokens.append(("any", ""))
            elif char == singlechar:
                tokens.append(("one", ""))
            else:
                tokens.append(("lit", char.casefold() if nocase else char))
            i += 1
        self.tokens = tokens

    def match(self, value: Any) -> object | None:
        if value is None:
            return None
        text = str(value).casefold() if self.nocase else str(value)
        tokens, t, p = self.tokens, 0, 0
        star, star_t = -1, 0
        while t < len(text):
            if p < len(tokens) and (tokens[p][0] == "one"
                                    or (tokens[p][0] == "lit" and tokens[p][1] == text[t])):
                t, p = t + 1, p + 1
            elif p < len(tokens) and tokens[p][0] == "any":
                star, star_t, p = p, t, p + 1
            elif star >= 0:  # let the last '%' swallow one more character
                star_t += 1
                t, p = star_t, star + 1
            else:
                return None
        while p < len(tokens) and tokens[p][0] == "any":
            p += 1
        return self if p == len(tokens) else None


class SafeEvaluator(NativeEvaluator):
    """pygeofilter's native evaluator with :class:`LikePattern` for ``LIKE``.

    The single-character wildcard is CQL2's ``_`` (pygeofilter's parsers set ``.``, so
    ``commune LIKE '350__'`` matched nothing)."""

    @handle(ast.Like)
    def like(self, node, lhs):
        maybe_not_inv = "" if node.not_ else "not "
        key = self._add_local(LikePattern(node.pattern, nocase=node.nocase,
                                          wildcard=node.wildcard or "%", singlechar="_",
                                          escapechar=node.escapechar))
        return f"({key}.match({lhs}) is {maybe_not_inv}None)"


def compile_filter(filterq: Any, fields: Iterable[str]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for ``filterq``; ValueError naming the problem (see :func:`check_filter`)."""
    fields = list(fields)
    check_filter(filterq, fields)
    allowed = set(fields) | set(GEOMETRY_NAMES)
    evaluator = SafeEvaluator(attribute_map={name: name for name in allowed},
                              use_getattr=False)
    try:
        predicate = evaluator.evaluate(filterq)
    except (RecursionError, SyntaxError, MemoryError) as err:
        raise ValueError("the filter is too deeply nested; simplify it") from err
    except Exception as err:  # a literal pygeofilter or shapely cannot build
        raise ValueError(f"the filter cannot be compiled: {err}") from err

    def matches(record: Mapping[str, Any]) -> bool:
        try:
            return bool(predicate(record))
        except Exception as err:  # type mismatch, division by zero, invalid geometry…
            raise ValueError(f"the filter cannot be evaluated on these values: "
                             f"{type(err).__name__}: {err}") from err

    return matches
