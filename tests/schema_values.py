"""Hypothesis strategies derived from a tool's JSON input schema (as ``tools/list`` publishes it).

``valid_values(schema)`` draws values the schema admits; ``bad_values(schema)`` draws
values it rejects (wrong type, out of range, too long or short, off pattern, outside
an enum). Both read only the keywords pydantic puts in tool schemas: ``type``,
``anyOf``, ``enum``, ``minimum``/``maximum``, ``minLength``/``maxLength``,
``pattern``, ``items``, ``maxItems``.
"""

import math
import re

from hypothesis import strategies as st

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)
JSON_OBJECTS = st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4)
NOT_A_NUMBER = st.text(max_size=12).map(lambda text: f"x{text}q")  # never a number, boolean or enum word
LONGEST_DRAWN = 200  # strings are drawn up to this long (or the schema's maxLength, if shorter)


def branches(schema):
    return schema.get("anyOf") or [schema]


def constraints_of(schema):
    """The branch of ``schema`` that carries the limits (the non-null one of an ``X | None``)."""
    return next((b for b in branches(schema) if b.get("type") not in (None, "null")), schema)


def valid_values(schema):
    """A strategy of values ``schema`` admits (null included where it is)."""
    options = [_valid_branch(branch) for branch in branches(schema)]
    return st.one_of(options)


def _valid_branch(schema):
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.floats(low, high, allow_nan=False, allow_infinity=False) | st.integers(
            None if low is None else math.ceil(low), None if high is None else math.floor(high))
    if kind == "string":
        low, high = schema.get("minLength", 0), min(schema.get("maxLength", LONGEST_DRAWN), LONGEST_DRAWN)
        if "pattern" in schema:
            return st.from_regex(_full(schema["pattern"]), fullmatch=True).filter(lambda s: low <= len(s) <= high)
        return st.text(min_size=low, max_size=high)
    if kind == "array":
        return st.lists(valid_values(schema.get("items", {})), max_size=schema.get("maxItems", 5))
    if kind == "object":
        return JSON_OBJECTS
    return JSON_VALUES  # no type: any JSON value


def _full(pattern):
    """``pattern`` anchored at the very end: JSON Schema's ``$`` does not admit a trailing newline."""
    return pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern


def bad_values(schema):
    """A strategy of values ``schema`` rejects, or None when it admits any JSON value.

    Pydantic validates tool arguments in lax mode, so only values it cannot coerce are
    drawn: no numeric strings for numbers, no 0/1 for booleans, no whole floats for integers.
    """
    types = {branch.get("type") for branch in branches(schema)}
    constraints = constraints_of(schema)
    if not types - {None}:  # any JSON value is allowed
        return None
    options = [st.lists(JSON_SCALARS, max_size=3)] if "array" not in types else []
    if "object" not in types:
        options.append(st.dictionaries(st.text(max_size=5), JSON_SCALARS, max_size=3))
    if "null" not in types:
        options.append(st.none())
    if "string" not in types:
        options.append(NOT_A_NUMBER)
    if not types & {"integer", "number", "boolean"}:
        options += [st.integers(), st.floats(allow_nan=False), st.booleans()]
    if types & {"string", "boolean"} and not types & {"integer", "number"}:
        options.append(st.integers().filter(lambda n: n not in (0, 1)))
    if "integer" in types:
        options.append(st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)))
    for bound, step in (("minimum", -1), ("maximum", 1)):
        if bound in constraints:
            options.append(st.integers(1, 10**6).map(lambda n, b=constraints[bound], s=step: b + s * n))
    if "maxLength" in constraints:
        options.append(st.just("x" * (constraints["maxLength"] + 1)))
    if constraints.get("minLength", 0) > 0:
        options.append(st.just(""))
    if "pattern" in constraints:
        pattern = re.compile(constraints["pattern"])
        options.append(st.text(min_size=1, max_size=40).filter(lambda text: not pattern.search(text)))
    if "enum" in constraints:
        options.append(NOT_A_NUMBER)
    if "maxItems" in constraints:
        options.append(st.just(["read"] * (constraints["maxItems"] + 1)))
    if "enum" in constraints.get("items", {}):
        options.append(st.lists(NOT_A_NUMBER, min_size=1, max_size=3))
    return st.one_of(options)
