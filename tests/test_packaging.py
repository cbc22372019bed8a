"""The package a host project installs: a wheel built from a clean copy of the tree, installed into a
fresh virtualenv, imports and migrates against a small host settings module.

The wheel is installed with ``--no-deps``: what is checked is the package's own contents. Its
dependencies come from this virtualenv through a ``.pth`` file, and the repository is never on the
path, so every ``realtime``/``mcp_sidecar`` import below is served from the installed wheel.
"""

import json
import secrets
import shutil
import subprocess
import sysconfig
import textwrap
import zipfile

import pytest
import websockets
from fastmcp import Client
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport

from tests.stack import PYTHON, ROOT, end, free_port, wait_for

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
        "scs_django/cli.py",
        "scs_django/settings.py",
        "scs_django/project/settings.py",
        "scs_django/project/templates/registration/login.html",
    ):
        assert needed in names, needed
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"realtime", "mcp_sidecar", "scs_django"}
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "scs-django = scs_django.cli:main" in entry_points


def install(wheel, venv):
    """A fresh virtualenv with the wheel installed and this one's dependencies on its path; its purelib."""
    run([PYTHON, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    # The dependencies, from this virtualenv (the package itself is not installed there).
    (venv / purelib.removeprefix(str(venv) + "/") / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([PYTHON, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel])
    return purelib


def test_a_fresh_virtualenv_imports_and_migrates(wheel, tmp_path):
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    purelib = install(wheel, venv)

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


def start(argv, cwd, env, log):
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.asyncio(loop_scope="function")
async def test_the_installed_command_migrates_serves_and_a_session_works_end_to_end(wheel, tmp_path):
    venv = tmp_path / "venv"
    install(wheel, venv)
    command = venv / "bin" / "scs-django"
    ws_port, mcp_port, key = free_port(), free_port(), secrets.token_urlsafe(24)
    # No Django project, no checkout on the path: the working directory is an empty folder.
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "API_KEY": key}  # 1.1's name
    migrated = run([command, "migrate"], cwd=work, env=env)
    assert "Applying realtime.0001_initial... OK" in migrated
    data = tmp_path / "home" / ".local" / "share" / "scs-django"  # the user's data directory by default
    assert (data / "db.sqlite3").is_file() and not (work / "var").exists()
    assert '"X-API-Key" = ' in run([command, "mcp-config", "codex"], cwd=work, env=env)

    log = tmp_path / "serve.log"
    server = start([command, "serve", "--host", "127.0.0.1", "--ws-port", str(ws_port), "--mcp-port", str(mcp_port)],
                   work, env, log)
    try:
        wait_for(f"http://127.0.0.1:{mcp_port}/health", timeout=90, process=server)
        wait_for(f"http://127.0.0.1:{ws_port}/health", timeout=30, process=server)
        transport = StreamableHttpTransport(f"http://127.0.0.1:{mcp_port}/mcp/", headers={"X-API-Key": key})
        async with Client(transport) as client:
            async def call(tool, **arguments):
                return (await client.call_tool(tool, arguments)).structured_content

            token = (await call("authenticate_agent", agent_id="installed", agent_type="claude"))["token"]
            session_id = (await call("create_session", purpose="installed", auth_token=token))["session_id"]
            async with websockets.connect(f"ws://127.0.0.1:{ws_port}/ws/{session_id}/", open_timeout=10,
                                          origin=f"http://127.0.0.1:{ws_port}",
                                          additional_headers={"Authorization": f"Bearer {token}"}) as socket:
                assert json.loads(await socket.recv())["type"] == "hello"
                added = await call("add_message", session_id=session_id, content="from the wheel", auth_token=token)
                frame = json.loads(await socket.recv())
                while frame["type"] != "new_message":
                    frame = json.loads(await socket.recv())
            assert (frame["seq"], frame["data"]["content"]) == (added["seq"], "from the wheel")
            read = await call("get_messages", session_id=session_id, auth_token=token)
            assert [m["content"] for m in read["messages"]] == ["from the wheel"] and read["total_count"] == 1
    finally:
        end(server)
    output = log.read_text()
    assert "Shared Context Server is running" in output and "scs-django mcp-config all" in output, output[-2000:]

    # `scs-django mcp`: stdio, on the same data folder, as a client configuration starts it.
    async with Client(StdioTransport(str(command), ["mcp"], env=env, cwd=str(work), keep_alive=False)) as stdio:
        info = json.loads((await stdio.read_resource("server://info"))[0].text)
        assert info["server_info"]["name"] == "shared-context-server-django"
        public = json.loads((await stdio.read_resource(f"session://{session_id}/messages/5"))[0].text)
        assert [m["content"] for m in public["messages"]] == ["from the wheel"]
