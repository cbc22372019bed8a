"""The package a host project installs: a wheel built from a clean copy of the tree, installed into a
fresh virtualenv, imports and migrates against a small host settings module.

The wheel is installed with ``--no-deps``: what is checked is the package's own contents. Its
dependencies come from this virtualenv through a ``.pth`` file, and the repository is never on the
path, so every ``realtime``/``mcp_sidecar`` import below is served from the installed wheel.
"""

import shutil
import subprocess
import sysconfig
import textwrap
import zipfile

import pytest

from tests.stack import PYTHON, ROOT

SKIP = shutil.ignore_patterns(".venv", ".git", "var", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis",
                              "build", "dist", "*.egg-info", "node_modules")

HOST_SETTINGS = """
    SECRET_KEY = "host-packaging-test-key-that-is-long-enough-for-django"
    INSTALLED_APPS = [
        "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
        "django.contrib.staticfiles", "channels", "realtime",
    ]
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %r}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
    STATIC_URL = "/static/"
    USE_TZ = True
    SCS_API_KEY = SCS_JWT_SECRET = SCS_BROADCAST_SECRET = "a-secret-for-the-packaging-test"
    SCS_PUBLISH_VIA = "channel_layer"  # no Daphne here: push to the (empty) in-memory layer
"""


def run(argv, **kwargs):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, argv))}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source = tmp_path_factory.mktemp("source") / "tree"
    shutil.copytree(ROOT, source, ignore=SKIP)
    dist = source.parent / "dist"
    run([PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", dist, source])
    [built] = dist.glob("*.whl")
    return built


def test_the_wheel_holds_the_app_and_the_sidecar_and_nothing_else(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "realtime/migrations/0001_initial.py",
        "realtime/templates/realtime/base.html",
        "realtime/templates/realtime/layout.html",
        "realtime/templates/realtime/session.html",
        "realtime/static/realtime/session.js",
        "realtime/static/realtime/app.css",
        "realtime/management/commands/serve.py",
        "realtime/publish.py",
        "realtime/routing.py",
        "mcp_sidecar/__main__.py",
        "mcp_sidecar/tools/__init__.py",
    ):
        assert needed in names, needed
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"realtime", "mcp_sidecar"}


def test_a_fresh_virtualenv_imports_and_migrates(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([PYTHON, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    # The dependencies, from this virtualenv (the package itself is not installed there).
    (tmp_path / "venv" / purelib.removeprefix(str(venv) + "/") / "deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    run([PYTHON, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel])

    host = tmp_path / "host"
    (host / "tinyhost").mkdir(parents=True)
    (host / "tinyhost" / "__init__.py").write_text("")
    (host / "tinyhost" / "settings.py").write_text(textwrap.dedent(HOST_SETTINGS % str(tmp_path / "db.sqlite3")))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(host), "DJANGO_SETTINGS_MODULE": "tinyhost.settings"}

    migrated = run([python, "-m", "django", "migrate", "--no-input"], cwd=tmp_path, env=env)
    assert "Applying realtime.0001_initial... OK" in migrated
    checked = run([python, "-c", textwrap.dedent("""
        import django
        django.setup()
        import mcp_sidecar.server, mcp_sidecar.tools, realtime, realtime.routing
        from django.contrib.staticfiles import finders
        from django.template.loader import get_template
        from realtime import publish
        get_template("realtime/session.html")
        session = publish.create_session("installed", created_by="packaging")
        print(realtime.__file__)
        print(mcp_sidecar.server.__file__)
        print(finders.find("realtime/session.js"))
        print(publish.add_message(session.id, "hello", sender="packaging").seq)
    """)], cwd=tmp_path, env=env).split()
    assert all(path.startswith(purelib) for path in checked[:3]), checked
    assert checked[3] == "1"
