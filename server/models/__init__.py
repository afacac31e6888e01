"""The objects clients see: pydantic models at the MCP boundary and in the store."""
