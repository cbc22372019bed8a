"""Real processes and real clients for end-to-end tests.

``Stack`` runs Daphne and the MCP sidecar on free ports over one data folder;
``Agent`` is a real MCP client (fastmcp ``Client``) holding a token; ``Watcher``
is a real WebSocket client that collects what a viewer receives.
"""

import asyncio
import atexit
import contextlib
import copy
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
from fastmcp import Client
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
from mcp.client.extension import ClientExtension, NotificationBinding
from pydantic import BaseModel, ConfigDict

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_MIGRATED = {}  # settings module -> a SQLite database with every migration applied, made once per process

SECRETS = ("SCS_API_KEY", "SCS_JWT_SECRET", "SCS_BROADCAST_SECRET", "DJANGO_SECRET_KEY")


def migrated_sqlite(env):
    """A migrated SQLite database file for ``env``'s settings module, migrated once and then copied."""
    module = env["DJANGO_SETTINGS_MODULE"]
    if module not in _MIGRATED:
        folder = Path(tempfile.mkdtemp(prefix="scs-migrated-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True, capture_output=True,
                       env={**env, "SCS_DATA_DIR": str(folder)})
        _MIGRATED[module] = folder / "db.sqlite3"
    return _MIGRATED[module]


def wait_for(url, timeout=60.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def end(process, sig=signal.SIGTERM):
    """Stop a child process (resumed first if paused) with ``sig``; kill it if it is still there after 10 s."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGCONT)
        process.send_signal(sig)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rss(pid):
    """A process's resident memory in bytes (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Stack:
    """Daphne + the MCP sidecar as real processes sharing ``data_dir``.

    ``settings_module`` and ``asgi_app`` choose the Django project (the standalone one
    by default); ``prefix`` is where that project mounts the app's URLs and WebSocket
    routes (e.g. ``"agents/"``).
    """

    def __init__(self, data_dir, *, settings_module="project.settings", asgi_app="project.asgi:application",
                 prefix="", **env):
        self.data_dir = Path(data_dir)
        self.asgi_app = asgi_app
        self.prefix = prefix
        self.ws_port = free_port()
        self.mcp_port = free_port()
        self.api_key = secrets.token_urlsafe(24)
        self.broadcast_secret = secrets.token_urlsafe(24)
        self.jwt_secret = secrets.token_urlsafe(32)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SCS_", "DATABASE_URL", "CHANNEL_LAYER"))}
        self.env = {
            **base,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "SCS_DATA_DIR": str(self.data_dir),
            "SCS_WS_PORT": str(self.ws_port),
            "SCS_MCP_PORT": str(self.mcp_port),
            "SCS_BROADCAST_URL": f"http://127.0.0.1:{self.ws_port}/{prefix}".rstrip("/"),
            "SCS_API_KEY": self.api_key,
            "SCS_BROADCAST_SECRET": self.broadcast_secret,
            "SCS_JWT_SECRET": self.jwt_secret,
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(32),
            "SCS_LOG_LEVEL": "WARNING",
            # The suites act as admins through the shared key; tests/test_agent_keys.py checks the default.
            "SCS_API_KEY_PERMISSIONS": "read,write,admin",
            **{k: str(v) for k, v in env.items()},
        }
        self.daphne = None
        self.sidecar = None
        self.more = []  # processes started by add_daphne / add_sidecar
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the processes make it

    # URLs

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.ws_port}"

    @property
    def app_url(self):
        """Where the app's pages, /health and /broadcast/ are: ``http_url`` plus the prefix."""
        return f"{self.http_url}/{self.prefix}".rstrip("/")

    @property
    def mcp_url(self):
        return f"http://127.0.0.1:{self.mcp_port}/mcp/"

    @property
    def origin(self):
        return self.http_url

    def ws_url(self, session_id, since=None):
        query = "" if since is None else f"?since={since}"
        return f"ws://127.0.0.1:{self.ws_port}/{self.prefix}ws/{session_id}/{query}"

    # Processes

    def manage(self, *args, check=True):
        return subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, check=check, capture_output=True, text=True
        )

    def shell(self, code):
        """Run Python in ``manage.py shell`` (another process, as an operator or a worker would); its stdout."""
        return self.manage("shell", "-v", "0", "-c", code).stdout

    def signed_in(self, username, *, staff=False):
        """Create a user of the project's user model and a signed-in session for it; the session cookie value."""
        out = self.shell(
            "from importlib import import_module; from django.conf import settings; from django.contrib import auth\n"
            f"u = auth.get_user_model()._default_manager.create_user({username!r}, password='pw-for-tests', "
            f"is_staff={staff!r})\n"
            "s = import_module(settings.SESSION_ENGINE).SessionStore()\n"
            "s[auth.SESSION_KEY] = str(u.pk); s[auth.HASH_SESSION_KEY] = u.get_session_auth_hash()\n"
            "s[auth.BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
            "s.create(); print(s.session_key)"
        )
        return out.split()[-1]

    def daphne_rss(self):
        return rss(self.daphne.pid)

    def _spawn(self, name, argv):
        # 0600 like everything else in the data folder, which the processes would otherwise fix and report.
        fd = os.open(self.data_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log = open(fd, "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def start(self):
        """Migrate, then start both processes at once; if either cannot start, stop what did and raise."""
        try:
            self.migrate()
            self.start_daphne(wait=False)
            self.start_sidecar(wait=False)
            self.wait_daphne()
            self.wait_sidecar()
        except BaseException:
            self.stop()
            raise
        return self

    def migrate(self):
        """``manage.py migrate``; a new SQLite data folder with its secrets set gets a copy of one migrated once.

        (A folder whose secrets the processes generate is migrated for real: migrate makes them first,
        before the two processes start together.)
        """
        database = self.data_dir / "db.sqlite3"
        fresh = not database.exists() and "DATABASE_URL" not in self.env
        if fresh and self.env["DJANGO_SETTINGS_MODULE"] == "project.settings" and all(
                self.env.get(name) for name in SECRETS):
            shutil.copyfile(migrated_sqlite(self.env), database)
            database.chmod(0o600)
        else:
            self.manage("migrate", "-v0")

    def start_daphne(self, wait=True):
        self.daphne = self._spawn(
            "daphne",
            [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.ws_port), "-v", "0",
             self.asgi_app],
        )
        if wait:
            self.wait_daphne()

    def wait_daphne(self):
        wait_for(f"{self.app_url}/health", process=self.daphne)

    def start_sidecar(self, wait=True):
        self.sidecar = self._spawn("sidecar", [PYTHON, "-m", "mcp_sidecar", "--port", str(self.mcp_port)])
        if wait:
            self.wait_sidecar()

    def wait_sidecar(self):
        wait_for(f"http://127.0.0.1:{self.mcp_port}/health", process=self.sidecar)

    def via(self, ws_port=None, mcp_port=None):
        """This stack seen through another Daphne (watchers) or sidecar (agents)."""
        view = copy.copy(self)
        view.ws_port = ws_port or self.ws_port
        view.mcp_port = mcp_port or self.mcp_port
        return view

    def add_daphne(self, port=None):
        """Start another Daphne process on ``port`` (a free one by default); returns the port."""
        view = self.via(ws_port=port or free_port())
        view.start_daphne()
        self.more.append(view.daphne)
        return view.ws_port

    def add_sidecar(self, port=None, **env):
        """Start another sidecar on ``port`` (a free one by default), ``env`` overriding; returns the port."""
        view = self.via(mcp_port=port or free_port())
        view.env = {**self.env, **{k: str(v) for k, v in env.items()}}
        view.start_sidecar()
        self.more.append(view.sidecar)
        return view.mcp_port


    def stop_daphne(self):
        end(self.daphne)

    def kill_daphne(self):
        end(self.daphne, signal.SIGKILL)

    def pause_daphne(self):
        self.daphne.send_signal(signal.SIGSTOP)

    def resume_daphne(self):
        self.daphne.send_signal(signal.SIGCONT)

    def kill_sidecar(self):
        end(self.sidecar, signal.SIGKILL)

    def stop_sidecar(self):
        end(self.sidecar)

    def stop(self):
        for process in self.more:
            end(process)
        end(self.sidecar)
        end(self.daphne)

    def operator_headers(self):
        """What an operator presents for the details of either ``/health``."""
        return {"Authorization": f"Bearer {self.broadcast_secret}"}

    def sidecar_health(self):
        """The sidecar's ``/health`` with its details (the bridge counters)."""
        answer = httpx.get(f"http://127.0.0.1:{self.mcp_port}/health", headers=self.operator_headers(), timeout=5)
        return answer.raise_for_status().json()

    def log(self, name):
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # Clients

    def mcp_client(self, headers=None, key=None, **client):
        """An MCP client admitted by ``key`` (an agent key) or, by default, the shared API key.

        ``client``: options of fastmcp's Client, e.g. ``mode="legacy"`` (the initialize handshake, an MCP session
        with a GET stream the server can push on) and ``extensions=[ChannelListener()]``.
        """
        headers = {"X-API-Key": key or self.api_key, **(headers or {})}
        return Client(StreamableHttpTransport(self.mcp_url, headers=headers), **client)

    async def agent(self, agent_id, agent_type="claude", permissions=("read", "write", "admin"), key=None, **client):
        """An Agent holding a token; ``key``: connect with that agent key instead of the shared key."""
        agent = Agent(self, key=key, **client)
        await agent.open(agent_id, agent_type, list(permissions))
        return agent

    async def listening_agent(self, agent_id, agent_type="claude", permissions=("read", "write"), key=None):
        """An Agent on an MCP session (the initialize handshake) whose ``listener`` collects pushed messages."""
        listener = ChannelListener()
        agent = await self.agent(agent_id, agent_type, permissions, key=key, mode="legacy", extensions=[listener])
        agent.listener = listener
        return agent

    def issue_key(self, agent_id, agent_type="claude", *options):
        """A new agent key from ``manage.py agent_key create`` (options e.g. "--permissions", "read")."""
        out = self.manage("agent_key", "create", "--agent-id", agent_id, "--agent-type", agent_type, *options).stdout
        (key,) = re.findall(r"^(scs_[0-9a-f]+_\S+)$", out, re.MULTILINE)
        return key

    def stdio_client(self, *, argv=(), client=None, **env):
        """An MCP client that launches ``python -m mcp_sidecar --transport stdio [argv]`` with this stack's env
        (+ ``env``); ``client``: options of fastmcp's Client."""
        transport = StdioTransport(PYTHON, ["-m", "mcp_sidecar", "--transport", "stdio", *argv],
                                   env={**self.env, **env}, cwd=str(ROOT), keep_alive=False,
                                   log_file=self.data_dir / "stdio.log")
        return Client(transport, **(client or {}))

    def watcher(self, session_id, token=None, since=None, **kwargs):
        return Watcher(self, session_id, token=token, since=since, **kwargs)


class ChannelParams(BaseModel):
    """What ``notifications/claude/channel`` carries: text, and string attributes (Claude Code's contract)."""

    model_config = ConfigDict(extra="forbid")
    content: str
    meta: dict[str, str]


class ChannelListener(ClientExtension):
    """Collects the ``notifications/claude/channel`` a server pushes to an MCP client.

    The MCP client drops a notification whose method it does not know (``ClientSession._on_notify``) unless a
    client extension binds it: this is that binding. Each notification is kept with when it came
    (``time.perf_counter()``), for latency measurements.
    """

    identifier = "io.github.shared-context-server/channel-listener"

    def __init__(self):
        self.received = []  # {"content": ..., "meta": {...}} in the order they came
        self.arrived = []  # time.perf_counter() of each
        self._changed = asyncio.Event()

    def notifications(self):
        return [NotificationBinding(method="notifications/claude/channel", params_type=ChannelParams,
                                    handler=self._receive)]

    async def _receive(self, params):
        self.received.append(params.model_dump())
        self.arrived.append(time.perf_counter())
        self._changed.set()

    @property
    def messages(self):
        """The pushed messages (each with a seq)."""
        return [item for item in self.received if "seq" in item["meta"]]

    @property
    def ended(self):
        """The notices of watches that ended (their agent's rights did, or the session)."""
        return [item for item in self.received if item["meta"].get("event") == "watch_ended"]

    @property
    def seqs(self):
        return [int(item["meta"]["seq"]) for item in self.messages]

    async def wait(self, predicate, timeout=10.0):
        """Wait until ``predicate(self)`` holds; TimeoutError with what came otherwise."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met; received: {self.received[-5:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self

    async def wait_for_seq(self, seq, timeout=10.0):
        return await self.wait(lambda listener: listener.seqs and listener.seqs[-1] >= seq, timeout)


class Agent:
    """A real MCP client with an agent token; ``call`` adds ``auth_token`` for you."""

    def __init__(self, stack, key=None, **client):
        self.stack = stack
        self.key = key
        self.client = stack.mcp_client(key=key, **client)
        self.token = None
        self.listener = None

    async def open(self, agent_id, agent_type, permissions):
        await self.client.__aenter__()
        result = await self.raw("authenticate_agent", agent_id=agent_id, agent_type=agent_type,
                                requested_permissions=permissions)
        assert result["success"], result
        self.token, self.agent_id, self.permissions = result["token"], agent_id, result["permissions"]

    async def raw(self, tool, **arguments):
        result = await self.client.call_tool(tool, arguments, raise_on_error=False)
        return result.structured_content

    async def call(self, tool, **arguments):
        return await self.raw(tool, auth_token=self.token, **arguments)

    async def close(self):
        await self.client.__aexit__(None, None, None)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


class Watcher:
    """A WebSocket viewer of one session, collecting frames in the background."""

    def __init__(self, stack, session_id, token=None, since=None, origin=None, headers=None, cookie=None):
        self.url = stack.ws_url(session_id, since)
        self.origin = stack.origin if origin is None else origin
        self.headers = dict(headers or {})
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if cookie:
            self.headers["Cookie"] = f"sessionid={cookie}"
        self.frames = []
        self.socket = None
        self._reader = None
        self._changed = asyncio.Event()
        self.closed = None  # close code once the server closed

    async def connect(self):
        self.socket = await websockets.connect(self.url, origin=self.origin, additional_headers=self.headers)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self):
        try:
            async for text in self.socket:
                self.received(json.loads(text))
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        self.closed = self.socket.close_code
        self._changed.set()

    def received(self, frame):
        """Keep one frame from the server (a subclass may note more, e.g. when it came)."""
        self.frames.append(frame)

    async def send(self, frame):
        await self.socket.send(json.dumps(frame) if not isinstance(frame, str) else frame)

    @property
    def messages(self):
        return [f for f in self.frames if f.get("type") == "new_message"]

    @property
    def seqs(self):
        return [f["seq"] for f in self.messages]

    @property
    def caught_up(self):
        """Whether the replay is over (a ``caught_up`` frame came)."""
        return any(f.get("type") == "caught_up" for f in self.frames)

    async def wait(self, predicate, timeout=10.0):
        """Wait until ``predicate(self)`` is true; raise TimeoutError with what was seen."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met; frames seen: {self.frames[-5:]} (closed={self.closed})")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self

    async def wait_for_seq(self, seq, timeout=10.0):
        return await self.wait(lambda w: w.seqs and w.seqs[-1] >= seq, timeout)

    async def wait_caught_up(self, timeout=10.0):
        return await self.wait(lambda w: w.caught_up, timeout)

    async def wait_closed(self, timeout=10.0):
        return await self.wait(lambda w: w.closed is not None, timeout)

    async def close(self):
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            await self._reader

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc):
        await self.close()
