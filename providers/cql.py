"""CQL2 filters evaluated in Python with pygeofilter's native backend.

pygeoapi 0.21 hands providers a pygeofilter AST; its file-based providers ignore it.  Ours
check every property the filter names against the collection's fields first (so a filter can
only reach published columns, and a typo gets a message listing the queryables), then compile
the AST once into a predicate over ``{property: value, geometry: shapely}`` dicts.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from pygeofilter import ast
from pygeofilter.backends.native.evaluate import NativeEvaluator

GEOMETRY_NAMES = ("geometry", "geom", "the_geom")


def attributes(node: Any) -> set[str]:
    """Every property name a filter AST refers to."""
    found: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Attribute):
            found.add(current.name)
        elif isinstance(current, ast.Node):
            stack.extend(current.get_sub_nodes())
        elif isinstance(current, (list, tuple)):
            stack.extend(current)
    return found


def compile_filter(filterq: Any, fields: Iterable[str]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for ``filterq``; ValueError naming the property if it is not queryable."""
    allowed = set(fields) | set(GEOMETRY_NAMES)
    unknown = sorted(attributes(filterq) - allowed)
    if unknown:
        raise ValueError(
            f"unknown propert{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)} in the "
            f"filter; queryable properties: {', '.join(sorted(fields))}"
        )
    evaluator = NativeEvaluator(attribute_map={name: name for name in allowed},
                                use_getattr=False)
    predicate = evaluator.evaluate(filterq)

    def matches(record: Mapping[str, Any]) -> bool:
        try:
            return bool(predicate(record))
        except (TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"the filter cannot be evaluated on these values: {err}") from err

    return matches
