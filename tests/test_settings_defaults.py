"""App defaults are written once, in ``realtime.conf.DEFAULTS``; ``project/settings.py`` only maps the environment."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from realtime.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "project" / "settings.py"
# Generated into the data folder on first start (project.env.local_secret), not defaulted.
SECRETS = {"SCS_API_KEY", "SCS_JWT_SECRET", "SCS_BROADCAST_SECRET"}
# Computed from another setting rather than written a second time: it follows SCS_WS_PORT.
DERIVED = {"SCS_BROADCAST_URL"}


def is_default_of(node, name):
    """``node`` is the expression ``SCS_DEFAULTS["<name>"]``."""
    return (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "SCS_DEFAULTS"
            and isinstance(node.slice, ast.Constant) and node.slice.value == name)


def test_every_app_setting_read_from_the_environment_takes_its_default_from_conf():
    """``env_int("SCS_X", 10)`` would be a second copy of a default: it must be ``SCS_DEFAULTS["SCS_X"]``."""
    tree = ast.parse(SETTINGS.read_text())
    checked, wrong = set(), []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id.startswith("env_")
                and call.args and isinstance(call.args[0], ast.Constant)):
            continue
        name = call.args[0].value
        if name not in DEFAULTS or name in SECRETS | DERIVED:
            continue
        checked.add(name)
        if len(call.args) < 2 or not is_default_of(call.args[1], name):
            wrong.append(f"line {call.lineno}: {ast.unparse(call)}")
    assert not wrong, "defaults written in project/settings.py rather than taken from realtime.conf:\n" + "\n".join(
        wrong
    )
    assert len(checked) >= 20  # the rule looked at the settings it is about


def test_under_an_empty_environment_the_settings_hold_exactly_the_conf_defaults(tmp_path):
    """Catches a default that drifted even where it is not an ``env_*`` call (e.g. inside a helper)."""
    script = (
        "import json, project.settings as s\n"
        "print(json.dumps({n: getattr(s, n) for n in dir(s) if n.startswith('SCS_')}, default=str))"
    )
    env = {"PATH": os.environ.get("PATH", ""), "SCS_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    values = json.loads(done.stdout)
    compared = {name: values[name] for name in DEFAULTS.keys() & values.keys() - SECRETS}
    assert len(compared) >= 25
    assert compared == {name: DEFAULTS[name] for name in compared}
