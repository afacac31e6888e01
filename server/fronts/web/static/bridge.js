// The session view as an MCP App (SEP-1865, io.modelcontextprotocol/ui): the host renders this page beside a
// get_session or send_message result, and the view reads the session by calling this server's MCP tools
// through the host (JSON-RPC over postMessage), never over HTTP: the app has no token and no network.
//
// Handshake: ui/initialize, then ui/notifications/initialized; the host then sends the tool's arguments
// (ui/notifications/tool-input) and its result (ui/notifications/tool-result), either of which names the session.
// New events come from get_events long-polls (wait_seconds), which resume after the last event shown.
"use strict";

(() => {
  const { $, notice, failed, SessionView } = window.SessionViews;
  const PROTOCOL_VERSION = "2026-01-26";
  const PAGE = 200; // get_events' largest page
  const POLL_S = 20; // a long poll's wait: short enough for hosts that time tool calls out
  const RETRY_MS = [500, 1000, 2000, 5000];
  const READ_BYTES = 4 * 1024 * 1024; // read_output_file's largest chunk

  // --- JSON-RPC over postMessage, to the host window ------------------------------------------------------

  let nextId = 1;
  const waiting = new Map();

  function post(message) {
    window.parent.postMessage({ jsonrpc: "2.0", ...message }, "*");
  }

  function request(method, params) {
    const id = nextId++;
    post({ id, method, params });
    return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
  }

  const notify = (method, params) => post({ method, params });

  async function callTool(name, args) {
    const result = await request("tools/call", { name, arguments: args });
    if (result.isError) {
      const text = (result.content || []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
      throw new Error(text || `${name} failed`);
    }
    return result;
  }

  let started = false;

  function sessionFrom(params) {
    const structured = params && (params.structuredContent || params.arguments);
    if (!structured || started) return;
    const id = structured.session_id || (structured.type === "session" ? structured.id : null);
    if (typeof id !== "string") return;
    started = true;
    new SessionView(mcpBackend, id).start().catch(failed);
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return; // only the host speaks to this page
    const message = event.data;
    if (!message || message.jsonrpc !== "2.0") return;
    if (message.method === undefined && waiting.has(message.id)) {
      const { resolve, reject } = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.error) reject(new Error(message.error.message || "the host refused the request"));
      else resolve(message.result);
      return;
    }
    switch (message.method) {
      case "ui/notifications/tool-input":
      case "ui/notifications/tool-result":
        sessionFrom(message.params);
        break;
      case "ui/resource-teardown":
      case "ping":
        post({ id: message.id, result: {} });
        break;
      default:
        if (message.id !== undefined) post({ id: message.id, error: { code: -32601, message: "not supported" } });
    }
  });

  // --- the backend: MCP tools ------------------------------------------------------------------------------

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function bytesOf(content) {
    const data = content.type === "image" ? content.data : content.resource && content.resource.blob;
    if (data !== undefined) return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const text = content.type === "text" ? content.text : (content.resource && content.resource.text) || "";
    return new TextEncoder().encode(text);
  }

  async function readFile(id, file, maxBytes) {
    const parts = [];
    let offset = 0;
    for (;;) {
      const size = Math.min(READ_BYTES, maxBytes - offset);
      const result = await callTool("read_output_file", { session_id: id, path: file.key, offset, max_bytes: size });
      const bytes = bytesOf(result.content[0]);
      parts.push(bytes);
      offset += bytes.length;
      if (result.structuredContent.eof || bytes.length === 0 || offset >= maxBytes) break;
    }
    return new Blob(parts, { type: file.mime_type });
  }

  let cursor = null; // the newest event read: polls go on from it

  const mcpBackend = {
    session: async (id) => (await callTool("get_session", { session_id: id })).structuredContent,

    async history(id, signal, onEvent) {
      for (;;) {
        const page = (await callTool("get_events", { session_id: id, after: cursor, limit: PAGE })).structuredContent;
        for (const event of page.events) onEvent(event);
        cursor = page.next_cursor || cursor;
        if (!page.has_more || signal.aborted) return;
      }
    },

    async follow(id, lastId, signal, onEvent, onState) {
      onState("live");
      for (let attempt = 0; !signal.aborted;) {
        try {
          const args = { session_id: id, after: lastId() || cursor, limit: PAGE, wait_seconds: POLL_S };
          const page = (await callTool("get_events", args)).structuredContent;
          for (const event of page.events) onEvent(event, event.id);
          cursor = page.next_cursor || cursor;
          if (attempt) onState("live");
          attempt = 0;
        } catch (error) {
          onState("reconnecting…");
          await sleep(RETRY_MS[Math.min(attempt++, RETRY_MS.length - 1)]);
        }
      }
    },

    async send(id, events) {
      for (const e of events) {
        if (e.type === "user.message") {
          const text = e.content.map((block) => block.text).join("\n");
          await callTool("send_message", { session_id: id, text, wait_seconds: 0 });
        } else if (e.type === "user.interrupt") {
          await callTool("interrupt_session", { session_id: id });
        } else if (e.type === "user.tool_confirmation") {
          const args = { session_id: id, tool_use_id: e.tool_use_id, allow: e.result === "allow" };
          if (e.deny_message) args.deny_message = e.deny_message;
          await callTool("confirm_tool_use", args);
        } else if (e.type === "user.custom_tool_result") {
          const content = (e.content || []).map((block) => block.text).join("\n");
          const args = { session_id: id, tool_use_id: e.custom_tool_use_id, content, is_error: !!e.is_error };
          await callTool("submit_tool_result", args);
        }
      }
    },

    async files(id) {
      const listed = (await callTool("list_output_files", { session_id: id })).structuredContent;
      return listed.files.map((file) => ({ ...file, key: file.path, filename: file.path }));
    },

    // A data: URL, not a blob: one: the extension's default policy for an app allows data: images only.
    async imageUrl(id, file) {
      const result = await callTool("read_output_file", { session_id: id, path: file.key, max_bytes: READ_BYTES });
      const image = result.content[0];
      if (image.type !== "image") throw new Error(`${file.key} is too big to preview here; download it`);
      return `data:${image.mimeType};base64,${image.data}`;
    },

    text: async (id, file, maxBytes) => new TextDecoder().decode(await (await readFile(id, file, maxBytes)).arrayBuffer()),

    blob: (id, file) => readFile(id, file, Number.MAX_SAFE_INTEGER),
  };

  // --- start ---------------------------------------------------------------------------------------------

  for (const id of ["login-view", "list-view"]) $(id).hidden = true;
  $("session-view").hidden = false;
  for (const node of document.querySelectorAll(".brand, .session-head a, #logout")) node.hidden = true;

  new ResizeObserver(() => {
    const { width, height } = document.documentElement.getBoundingClientRect();
    notify("ui/notifications/size-changed", { width: Math.ceil(width), height: Math.ceil(height) });
  }).observe(document.documentElement);

  request("ui/initialize", {
    protocolVersion: PROTOCOL_VERSION,
    appInfo: { name: "managed-sessions", version: "1" },
    appCapabilities: { availableDisplayModes: ["inline"] },
  }).then(() => notify("ui/notifications/initialized", {}))
    .catch((error) => notice(`The host did not start this view: ${error.message}`));
})();
