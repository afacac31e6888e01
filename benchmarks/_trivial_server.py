"""The SDK floor: an `MCPServer` over stdio with one tool that returns a constant.

Run as a child process by the benchmarks; a round trip or a start-up against it is what the
MCP SDK costs with nothing of ours behind it. The tool takes the same argument as `get_session`
so requests are the same size.
"""

from __future__ import annotations

from mcp.server import MCPServer

mcp = MCPServer("trivial", version="0.0.0", log_level="WARNING")


@mcp.tool()
async def constant(session_id: str) -> str:
    """Return a constant."""
    return "ok"


if __name__ == "__main__":
    mcp.run()
