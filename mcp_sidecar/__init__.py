"""The MCP sidecar: agent tools over streamable HTTP or stdio, storing with the Django ORM."""
