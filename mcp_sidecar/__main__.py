"""``python -m mcp_sidecar [--transport http|stdio] [--host H] [--port P] [--watch SESSION_ID ...]``."""

import argparse
import asyncio
import os
import sys


def main(argv=None):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    # Plain one-line log records, like Django's, rather than FastMCP's boxed ones.
    os.environ.setdefault("FASTMCP_ENABLE_RICH_LOGGING", "false")
    os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")
    parser = argparse.ArgumentParser(prog="python -m mcp_sidecar", description="Shared Context MCP sidecar")
    parser.add_argument("--transport", choices=["http", "stdio"], default="http")
    parser.add_argument("--host", default=None, help="listen address (default: SCS_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="listen port (default: SCS_MCP_PORT or 23456)")
    parser.add_argument("--watch", action="append", default=[], metavar="SESSION_ID",
                        help="stdio: push this session's new messages to the client from the start, as the agent "
                             "of SCS_AGENT_KEY (repeat for more sessions)")
    args = parser.parse_args(argv)
    if args.watch and args.transport != "stdio":
        parser.error("--watch works with --transport stdio (over HTTP, call the watch_session tool)")

    try:
        import django

        django.setup()
    except Exception as exc:  # noqa: BLE001 - settings errors are reported as one line
        sys.exit(f"mcp_sidecar: bad configuration: {exc}")

    from mcp_sidecar.server import StartupError, run
    from realtime import conf

    host = args.host or conf.get("SCS_HOST")
    port = args.port or conf.get("SCS_MCP_PORT")
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is optional off Linux/macOS
        runner = asyncio.run
    try:
        runner(run(args.transport, host, port, watch=args.watch))
    except StartupError as exc:
        sys.exit(f"mcp_sidecar: {exc}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
