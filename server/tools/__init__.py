"""The MCP tools clients call, one module per object kind. Each is a thin wrapper over a service."""
