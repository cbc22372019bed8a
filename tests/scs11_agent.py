"""An agent written for shared-context-server 1.1, kept as such: ``python -m tests.scs11_agent URL``.

Uses only what 1.1 documented: the ``API_KEY`` environment variable sent as ``X-API-Key``,
authenticate_agent / create_session / add_message / get_messages (with ``total_count``) and the
resources ``server://info/default``, ``docs://tools/default`` and ``session://{id}/messages/{limit}``.
It prints one JSON line of what it saw and exits 0, or fails. tests/test_scs11_compat.py runs it,
unchanged, against this server and against the real 1.1.10.
"""

import asyncio
import json
import os
import sys

from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport


def answer(result):
    return json.loads(result.content[0].text)


async def main(url):
    headers = {"X-API-Key": os.environ["API_KEY"]}
    async with Client(StreamableHttpTransport(url, headers=headers)) as client:
        async def call(tool, **arguments):
            data = answer(await client.call_tool(tool, arguments))
            assert data.get("success"), (tool, data)
            return data

        auth = await call("authenticate_agent", agent_id="legacy-agent", agent_type="claude",
                          requested_permissions=["read", "write"])
        token = auth["token"]
        session_id = (await call("create_session", purpose="written for 1.1", metadata={"v": "1.1"},
                                 auth_token=token))["session_id"]
        first = await call("add_message", session_id=session_id, content="a public finding", auth_token=token)
        await call("add_message", session_id=session_id, content="my own note", visibility="private",
                   auth_token=token)
        await call("add_message", session_id=session_id, content="a reply", auth_token=token,
                   parent_message_id=first["message_id"])
        page = await call("get_messages", session_id=session_id, limit=2, offset=0, auth_token=token)
        assert (page["count"], page["total_count"], page["has_more"]) == (2, 3, True), page
        public = await call("get_messages", session_id=session_id, visibility_filter="public", auth_token=token)
        assert public["total_count"] == 2, public

        resources = {}
        for uri in ("server://info/default", "docs://tools/default", f"session://{session_id}/messages/10"):
            contents = await client.read_resource(uri)
            resources[uri.split("/")[0] + "//" + uri.split("/")[2]] = json.loads(contents[0].text)
        info = resources["server://info"]["server_info"]
        tools = resources["docs://tools"]["tools_documentation"]
        seen = [m["content"] for m in resources[f"session://{session_id}"]["messages"]]
        assert "a public finding" in seen, seen
        print(json.dumps({"server": info["name"], "documented_tools": tools["total_tools"], "session_messages": seen,
                          "total_count": page["total_count"]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
