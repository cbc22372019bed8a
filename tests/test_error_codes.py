"""Every error code the code base gives agents comes from ``realtime.errors.ErrorCode`` and is documented.

The browser-facing doors in ``realtime/live/`` (the broadcast view's refusals, WebSocket error frames) speak
to the bridge and to browsers, not to agents: their codes are described in the README's protocol sections.
"""

import ast
import re
from pathlib import Path

from mcp_sidecar.tools.guidance import GUIDANCE
from realtime.errors import ErrorCode, OperationError

ROOT = Path(__file__).resolve().parent.parent
# The calls that carry a code as their first argument.
CODE_CARRIERS = {"OperationError", "TokenError", "refused", "refusal_error"}


def sources():
    for package in ("realtime", "mcp_sidecar"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), filename=str(path))


def called_name(call):
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)


def is_member(node):
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ErrorCode"
            and node.attr in ErrorCode.__members__)


def test_every_code_is_its_name_and_says_what_to_do():
    for code in ErrorCode:
        assert code == code.name and code.value == code.name
        assert code.advice.strip() and code.advice != code.name, code


def test_an_error_carries_its_code_as_the_plain_string_on_the_wire():
    error = OperationError(ErrorCode.SESSION_NOT_FOUND, "no session", "create one").as_dict()
    assert error == {"success": False, "error": "no session", "code": "SESSION_NOT_FOUND", "hint": "create one"}
    assert type(ErrorCode("SESSION_NOT_FOUND")) is ErrorCode


def test_every_error_raised_names_an_enum_member():
    """A literal (or computed) code in a raise is a code nobody listed; pass-throughs (``exc.code``) are fine."""
    found, literals = set(), []
    for path, tree in sources():
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                first, name = node.args[0], called_name(node)
                if is_member(first) and name in (*CODE_CARRIERS, "__init__"):  # __init__: RateLimited's
                    found.add(first.attr)
                elif name in CODE_CARRIERS and isinstance(first, ast.Constant | ast.JoinedStr | ast.BinOp):
                    literals.append(f"{where}:{node.lineno}")
            if isinstance(node, ast.Dict) and where.parts[0] == "mcp_sidecar":  # a body built by hand (the 401)
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "code":
                        if is_member(value):
                            found.add(value.attr)
                        else:
                            literals.append(f"{where}:{node.lineno} (dict)")
    assert not literals, f"use an ErrorCode member for these codes: {literals}"
    # The scan must see the codes raised: if it found almost none, it is looking in the wrong place.
    assert {"SESSION_NOT_FOUND", "TOKEN_EXPIRED", "API_KEY_REQUIRED", "RATE_LIMITED"} <= found, found
    unused = set(ErrorCode.__members__) - found
    assert not unused, f"codes nothing raises (remove them, or raise them): {sorted(unused)}"


def test_the_guidance_explains_every_code():
    assert GUIDANCE["troubleshooting"]["error_codes"] == {code.value: code.advice for code in ErrorCode}


def readme_error_codes():
    text = (ROOT / "README.md").read_text()
    section = text.split("### Error codes", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([A-Z_]+)` \|", section, re.MULTILINE)


def test_the_readme_lists_every_code_once():
    listed = readme_error_codes()
    assert len(listed) == len(set(listed)), listed
    assert set(listed) == set(ErrorCode.__members__)
