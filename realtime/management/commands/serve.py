"""``python manage.py serve``: migrate, then run Daphne and the MCP sidecar together.

Prints the page URL, how to sign in, how to issue an agent its own key and an MCP
client configuration with the shared key; restarts a child that crashes (with
back-off) and stops both cleanly on Ctrl-C.

``--workers N`` runs N Daphne processes on ports ``--ws-port``, +1, … +N-1 (put a
reverse proxy in front to offer one address). They share sessions through the
channel layer, so N > 1 needs ``CHANNEL_LAYER_URL=redis://…``. Unless
``SCS_BROADCAST_URL`` is set, the sidecar is given every worker's URL and
broadcasts to the first one that answers.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from realtime import conf
from realtime.client_config import config_for, mcp_url
from realtime.live.layers import is_process_local

RESTART_LIMIT = 5  # crashes within RESTART_WINDOW seconds before giving up
RESTART_WINDOW = 60
STARTUP_TIMEOUT = 30


def port_free(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def healthy(url):
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class Child:
    """One supervised process and its crash history."""

    def __init__(self, name, argv, health_url, env=None):
        self.name, self.argv, self.health_url = name, argv, health_url
        self.env = env
        self.process = None
        self.crashes = []

    def start(self):
        self.process = subprocess.Popen(self.argv, env={**os.environ, **(self.env or {})})

    def stop(self, timeout=5):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def check_workers(workers):
    """Refuse a worker count the channel layer cannot serve."""
    if workers < 1:
        raise CommandError("--workers must be 1 or more")
    if workers > 1 and is_process_local(settings.CHANNEL_LAYERS.get("default")):
        raise CommandError(
            f"--workers {workers} needs a channel layer shared by the Daphne processes: set "
            "CHANNEL_LAYER_URL=redis://127.0.0.1:6379/0 (the in-memory layer reaches only its own process, "
            "so viewers on one worker would miss what is broadcast to another)."
        )


def broadcast_env(host, ws_ports):
    """The sidecar's SCS_BROADCAST_URL: every Daphne worker, unless the environment names one."""
    if os.environ.get("SCS_BROADCAST_URL", "").strip():
        return {}
    return {"SCS_BROADCAST_URL": ",".join(f"http://{host}:{port}" for port in ws_ports)}


class Command(BaseCommand):
    help = "Run the Shared Context Server: Daphne (UI + WebSockets) and the MCP sidecar."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=conf.get("SCS_HOST"))
        parser.add_argument("--ws-port", type=int, default=getattr(settings, "SCS_WS_PORT", 8081))
        parser.add_argument("--mcp-port", type=int, default=conf.get("SCS_MCP_PORT"))
        parser.add_argument("--no-migrate", action="store_true", help="skip applying migrations")
        parser.add_argument("--workers", type=int, default=1,
                            help="Daphne processes, on ports --ws-port, +1, ... (N > 1 needs CHANNEL_LAYER_URL)")
        parser.add_argument("--max-restarts", type=int, default=RESTART_LIMIT,
                            help=f"give up when a process crashes more often than this in {RESTART_WINDOW}s")
        parser.add_argument("--restart-delay", type=float, default=0.5,
                            help="seconds before the first restart of a crashed process; doubles each time")

    def handle(self, *args, host, ws_port, mcp_port, no_migrate, workers, **options):
        check_workers(workers)
        self.max_restarts, self.restart_delay = options["max_restarts"], options["restart_delay"]
        ws_ports = [ws_port + n for n in range(workers)]
        for name, port in [*(("SCS_WS_PORT", p) for p in ws_ports), ("SCS_MCP_PORT", mcp_port)]:
            if not port_free(host, port):
                raise CommandError(f"port {port} on {host} is already in use (set {name} to another port)")
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        sign_in = self.ensure_admin()

        asgi = settings.ASGI_APPLICATION.rpartition(".")
        env_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        children = [
            *(Child(
                "daphne" if workers == 1 else f"daphne:{port}",
                [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "-v", "0",
                 "--websocket-max-message-size", "65536", f"{asgi[0]}:{asgi[2]}"],
                f"http://{env_host}:{port}/health",
            ) for port in ws_ports),
            Child(
                "mcp_sidecar",
                [sys.executable, "-m", "mcp_sidecar", "--transport", "http", "--host", host, "--port", str(mcp_port)],
                f"http://{env_host}:{mcp_port}/health",
                env=broadcast_env(env_host, ws_ports),
            ),
        ]
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        try:
            for child in children:
                child.start()
            self.wait_until_healthy(children)
            self.print_banner(env_host, ws_port, mcp_url(host, mcp_port), sign_in)
            if workers > 1:
                self.stdout.write(f"{workers} Daphne processes on ports {ws_ports[0]}-{ws_ports[-1]}, "
                                  "sharing sessions through the Redis channel layer.")
            self.supervise(children, stopping)
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                child.stop()
            self.stdout.write("Stopped.")

    def ensure_admin(self):
        """Create a first admin on a fresh database; return how to sign in."""
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return "Sign in with your admin account (python manage.py changepassword <user> to reset it)."
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(**{User.USERNAME_FIELD: "admin"}, email="", password=password)
        return f"Sign in as 'admin' with password {password}  (shown once; change it in the admin)."

    def wait_until_healthy(self, children):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        pending = list(children)
        while pending:
            for child in list(pending):
                if child.process.poll() is not None:
                    raise CommandError(f"{child.name} exited during start-up (code {child.process.returncode})")
                if healthy(child.health_url):
                    pending.remove(child)
            if time.monotonic() > deadline:
                raise CommandError(f"{', '.join(c.name for c in pending)} did not become healthy in time")
            time.sleep(0.1)

    def print_banner(self, host, ws_port, mcp, sign_in):
        self.stdout.write(self.style.SUCCESS(f"Shared Context Server is running at http://{host}:{ws_port}/"))
        self.stdout.write(sign_in)
        self.stdout.write(f"MCP endpoint: {mcp}  (send the X-API-Key header)")
        # The installed command (scs-django) or a checkout's manage.py, as this was started.
        mcp_config = "scs-django mcp-config" if sys.argv[0].endswith("scs-django") else "python manage.py mcp_config"
        self.stdout.write("Give each agent its own key (it can then act only as that agent):")
        self.stdout.write(f"  {mcp_config} claude --agent-id reviewer-1 --agent-type claude")
        self.stdout.write("Or add it to Claude Code with the shared key (any agent id without a key of its own):")
        self.stdout.write(f"  {config_for('claude', url=mcp)}")
        self.stdout.write(f"Other clients: {mcp_config} all [--agent-id ID --agent-type TYPE]")
        self.stdout.write("Press Ctrl-C to stop.")

    def supervise(self, children, stopping):
        while not stopping:
            for child in children:
                code = child.process.poll()
                if code is None:
                    continue
                now = time.monotonic()
                child.crashes = [t for t in child.crashes if now - t < RESTART_WINDOW] + [now]
                if len(child.crashes) > self.max_restarts:
                    raise CommandError(
                        f"{child.name} crashed {len(child.crashes)} times in {RESTART_WINDOW}s (last exit code "
                        f"{code}); giving up. Its output above says why."
                    )
                delay = 2 ** (len(child.crashes) - 1) * self.restart_delay
                self.stderr.write(f"{child.name} exited with code {code}; restarting in {delay:.1f}s")
                time.sleep(delay)
                child.start()
            time.sleep(0.2)
