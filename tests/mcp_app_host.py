"""A minimal MCP Apps host (SEP-1865) for browser tests: a page that speaks MCP to the real server at `/mcp`
(Streamable HTTP, the handshake revision, declaring the `io.modelcontextprotocol/ui` extension), reads the
`ui://` view that `get_session` links to, renders it in a sandboxed iframe under the CSP its metadata asks for
(the extension's host rules), and answers the view's JSON-RPC over postMessage: `ui/initialize`, then
`ui/notifications/tool-input` and `tool-result` for a `get_session` call, and `tools/call` and `resources/read`
passed on to the server.

The test serves this page at the server's own origin (Playwright's routing), so its requests to `/mcp` pass the
server's Origin check. `window.hostLog` lists the methods the view sent, `window.openView(id)` starts it."""

from __future__ import annotations

import json

__all__ = ["host_page"]

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>test host</title></head>
<body>
<script>
"use strict";
const TOKEN = __TOKEN__;
const UI = "io.modelcontextprotocol/ui";
const MIME = "text/html;profile=mcp-app";
let nextId = 1, mcpSession = null, negotiated = null;
window.hostLog = [];

async function mcp(method, params, notification = false) {
  const body = { jsonrpc: "2.0", method, params };
  if (!notification) body.id = nextId++;
  const headers = { authorization: "Bearer " + TOKEN, "content-type": "application/json",
                    accept: "application/json, text/event-stream" };
  if (mcpSession) headers["mcp-session-id"] = mcpSession;
  if (negotiated) headers["mcp-protocol-version"] = negotiated;
  const response = await fetch("/mcp", { method: "POST", headers, body: JSON.stringify(body) });
  if (method === "initialize") mcpSession = response.headers.get("mcp-session-id");
  if (notification) return null;
  const text = await response.text();
  const streamed = (response.headers.get("content-type") || "").startsWith("text/event-stream");
  const messages = streamed
    ? text.split("\\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).filter(Boolean)
        .map((l) => JSON.parse(l))
    : [JSON.parse(text)];
  const answer = messages.find((m) => m.id === body.id);
  if (!answer) throw { code: -32603, message: `no answer to ${method} (HTTP ${response.status})` };
  if (answer.error) throw answer.error;
  return answer.result;
}

function policy(csp) {
  const list = (name) => ((csp && csp[name]) || []).join(" ");
  return [
    "default-src 'none'",
    `script-src 'self' 'unsafe-inline' ${list("resourceDomains")}`,
    `style-src 'self' 'unsafe-inline' ${list("resourceDomains")}`,
    `img-src 'self' data: ${list("resourceDomains")}`,
    `connect-src ${list("connectDomains") || "'none'"}`,
    `frame-src ${list("frameDomains") || "'none'"}`,
    "object-src 'none'",
    `base-uri ${list("baseUriDomains") || "'self'"}`,
  ].join("; ");
}

window.openView = async (sessionId) => {
  const init = await mcp("initialize", { protocolVersion: "2025-06-18", clientInfo: { name: "test-host", version: "1" },
                                         capabilities: { extensions: { [UI]: { mimeTypes: [MIME] } } } });
  negotiated = init.protocolVersion;
  await mcp("notifications/initialized", {}, true);
  const tool = (await mcp("tools/list", {})).tools.find((t) => t.name === "get_session");
  const resource = (await mcp("resources/read", { uri: tool._meta.ui.resourceUri })).contents[0];
  if (resource.mimeType !== MIME) throw new Error("not an MCP App: " + resource.mimeType);
  const meta = `<meta http-equiv="Content-Security-Policy" content="${policy(resource._meta.ui.csp)}">`;
  const args = { session_id: sessionId };
  const result = await mcp("tools/call", { name: "get_session", arguments: args });

  const frame = document.createElement("iframe");
  frame.sandbox = "allow-scripts";
  frame.style.cssText = "width: 1000px; height: 800px; border: 1px solid #999";
  const send = (message) => frame.contentWindow.postMessage({ jsonrpc: "2.0", ...message }, "*");
  window.addEventListener("message", async (event) => {
    if (event.source !== frame.contentWindow) return;
    const m = event.data;
    if (!m || m.jsonrpc !== "2.0" || m.method === undefined) return;
    window.hostLog.push(m.method);
    const answer = (payload) => send({ id: m.id, ...payload });
    switch (m.method) {
      case "ui/initialize":
        answer({ result: { protocolVersion: "2026-01-26", hostInfo: { name: "test-host", version: "1" },
                           hostCapabilities: { serverTools: {}, serverResources: {} },
                           hostContext: { displayMode: "inline", theme: "light" } } });
        break;
      case "ui/notifications/initialized":
        send({ method: "ui/notifications/tool-input", params: { arguments: args } });
        send({ method: "ui/notifications/tool-result", params: result });
        break;
      case "tools/call":
      case "resources/read":
        try {
          answer({ result: await mcp(m.method, m.params) });
        } catch (error) {
          answer({ error: { code: error.code || -32603, message: error.message || String(error) } });
        }
        break;
      case "ui/notifications/size-changed":
        break;
      default:
        if (m.id !== undefined) answer({ error: { code: -32601, message: "not supported by this host" } });
    }
  });
  frame.srcdoc = resource.text.replace("<head>", "<head>" + meta);
  document.body.append(frame);
};
</script>
</body></html>
"""


def host_page(token: str) -> str:
    """The host page, holding the server's token (the host is the MCP client; the view never sees it)."""
    return _PAGE.replace("__TOKEN__", json.dumps(token))
