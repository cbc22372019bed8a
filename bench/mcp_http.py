"""A lean MCP client for load generation: one JSON-RPC POST per tool call, as the protocol's stateless revision has it.

fastmcp's ``Client`` costs ~3–4 ms of CPU per call (its transport, the MCP session layer, pydantic models both
ways). Run beside the server on the same cores, that is CPU taken from the server: the benchmark measures its
own client. ``LeanAgent`` sends the same requests on the wire (the headers and ``_meta`` fastmcp sends for
protocol revision ``2026-07-28``) from an ``aiohttp`` session, so the server does the same work for each call
and the client costs a fraction of it. It speaks only what the benchmarks need: ``tools/call``, answered with
JSON or with an SSE stream whose last event is the answer.
"""

import itertools
import json

import aiohttp

CLIENTS = ("fastmcp", "lean")  # what a benchmark's --client chooses: fastmcp's Client, or LeanAgent
PROTOCOL_VERSION = "2026-07-28"
CLIENT_INFO = {"name": "scs-bench", "version": "1"}


class CallError(RuntimeError):
    """The server answered a call with a JSON-RPC error or an HTTP error status."""


def _answer(body, content_type):
    """The JSON-RPC message answering a POST: the body itself, or the last ``data:`` event of an SSE stream."""
    if content_type.startswith("text/event-stream"):
        events = [line[5:].strip() for line in body.splitlines() if line.startswith("data:")]
        if not events:
            raise CallError("the SSE answer carried no event")
        body = events[-1]
    return json.loads(body)


class LeanAgent:
    """An agent holding a token, like ``tests.stack.Agent``: ``call`` adds ``auth_token``, ``raw`` does not."""

    def __init__(self, mcp_url, api_key, session=None):
        self.url = mcp_url
        self.headers = {
            "x-api-key": api_key,
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
            "mcp-protocol-version": PROTOCOL_VERSION,
            "mcp-method": "tools/call",
        }
        self.meta = {
            "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
            "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        self._session = session
        self._owns_session = session is None
        self._ids = itertools.count(1)
        self.token = self.agent_id = self.permissions = None

    @classmethod
    async def open(cls, stack, agent_id, agent_type="claude", permissions=("read", "write", "admin"), session=None):
        """An agent of ``stack`` (a ``tests.stack.Stack`` or a copy of its URLs and keys) holding a fresh token."""
        agent = cls(stack.mcp_url, stack.api_key, session)
        try:
            result = await agent.raw("authenticate_agent", agent_id=agent_id, agent_type=agent_type,
                                     requested_permissions=list(permissions))
            if not result.get("success"):
                raise CallError(f"authenticate_agent failed: {result}")
        except BaseException:
            await agent.close()
            raise
        agent.token, agent.agent_id, agent.permissions = result["token"], agent_id, result["permissions"]
        return agent

    async def raw(self, tool, **arguments):
        """Call ``tool``; its structured result (the tools' ``{"success": ...}`` object), or CallError."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": "tools/call",
                   "params": {"name": tool, "arguments": arguments, "_meta": self.meta}}
        async with self._session.post(self.url, data=json.dumps(request),
                                      headers={**self.headers, "mcp-name": tool}) as response:
            body = await response.text()
            content_type = response.headers.get("content-type", "")
        try:
            message = _answer(body, content_type) if body else {}
        except ValueError:
            raise CallError(f"{tool}: HTTP {response.status} answered with no JSON: {body[:200]!r}") from None
        if "error" in message:  # a JSON-RPC error, or the sidecar's own refusal of the request (401, 429)
            error = message["error"]
            said = error.get("message", error) if isinstance(error, dict) else error
            raise CallError(f"{tool}: HTTP {response.status}: {said}")
        if "result" not in message:
            raise CallError(f"{tool}: HTTP {response.status} with no JSON-RPC answer: {body[:200]!r}")
        result = message["result"]
        if result.get("isError") and not result.get("structuredContent"):
            text = " ".join(part.get("text", "") for part in result.get("content", []))
            raise CallError(f"{tool}: {text or result}")
        return result.get("structuredContent") or {}

    async def call(self, tool, **arguments):
        return await self.raw(tool, auth_token=self.token, **arguments)

    async def close(self):
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
