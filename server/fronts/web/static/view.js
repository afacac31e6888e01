// The session view: one session's log, its pending tool calls and its output files, as they happen. It reads
// the session through a backend (page.js: the REST API and its event stream; bridge.js: an MCP host's tools),
// so the browser page and the MCP App show the same view.
//
// Rules this file keeps: every value from the server goes into the page through textContent (never as HTML);
// big texts are cut for display, with the whole a click away, so a 10 MB tool result cannot freeze the page.
//
// A backend has: session(id, signal) -> Session; history(id, signal, onEvent) (every stored event, oldest
// first); follow(id, lastId(), signal, onEvent(event, storedId), onState(text)) (new events, until aborted);
// send(id, events); files(id, signal) -> [{key, filename, size_bytes, mime_type}]; imageUrl(id, file, signal);
// text(id, file, maxBytes, signal); blob(id, file, signal).
"use strict";

(() => {
  const SHOWN_CHARS = 4000; // of a tool input or result, inline; the rest is downloadable
  const PREVIEW_BYTES = 64 * 1024; // of a text file, in the preview pane

  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child); // a string becomes a text node
    }
    return node;
  }

  function notice(message) {
    const box = $("notice");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // An error for the user; aborts (a view closing) and errors already dealt with (`quiet`) are not shown.
  function failed(error) {
    if (!error || error.name === "AbortError" || error.quiet) return;
    notice(String(error.message || error));
  }

  let active = null; // the session view the message box and Interrupt button act on

  // --- small formatters ---------------------------------------------------------------------------------

  function age(iso) {
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return `${Math.round(seconds)} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} d`;
  }

  function usage(u) {
    if (!u) return "";
    const cached = u.cache_read_input_tokens ? `, ${u.cache_read_input_tokens} cached` : "";
    return `${u.input_tokens || 0} in / ${u.output_tokens || 0} out tokens${cached}`;
  }

  function bytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  function blocksText(content) {
    if (typeof content === "string") return content;
    return (content || []).map((block) => {
      if (block.type === "text") return block.text;
      if (block.type === "image") return "[image]";
      if (block.type === "document") return "[document]";
      return `[${block.type}]`;
    }).join("\n");
  }

  function saveBlob(blob, filename) {
    const url = URL.createObjectURL(blob);
    el("a", { href: url, download: filename }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  const saveText = (text, filename) => saveBlob(new Blob([text], { type: "text/plain;charset=utf-8" }), filename);

  // A <pre> with at most SHOWN_CHARS of `text`, and a download of the whole when it is longer.
  function boundedText(text, filename) {
    const box = el("div");
    box.append(el("pre", { textContent: text.length > SHOWN_CHARS ? text.slice(0, SHOWN_CHARS) : text }));
    if (text.length > SHOWN_CHARS) {
      box.append(
        el("span", { class: "truncated", textContent: `Showing ${SHOWN_CHARS} of ${text.length} characters. ` }),
        el("button", { type: "button", textContent: "Download all", onclick: () => saveText(text, filename) }),
      );
    }
    return box;
  }

  // A message's text as a block, bounded like a tool result: messages and errors can be megabytes too.
  function boundedProse(text, filename) {
    if (text.length <= SHOWN_CHARS) return el("div", { class: "text", textContent: text });
    return el("div", { class: "text" }, boundedText(text, filename));
  }

  class SessionView {
    constructor(backend, sessionId) {
      this.backend = backend;
      this.id = sessionId;
      this.abort = new AbortController();
      this.lastId = null; // the newest stored event shown: the stream resumes after it
      this.seen = new Set();
      this.tools = new Map(); // tool use event id -> its entry's parts
      this.previews = new Map(); // agent.message id -> its preview's text node
      this.pending = new Set(); // tool uses the session waits on
      this.filesTimer = null;
    }

    stop() {
      this.abort.abort();
      clearTimeout(this.filesTimer);
      if (active === this) active = null;
    }

    async start() {
      active = this;
      $("log").replaceChildren();
      $("files").replaceChildren();
      $("file-preview").replaceChildren();
      $("session-id").textContent = this.id;
      this.showPending();
      const signal = this.abort.signal;
      this.head(await this.backend.session(this.id, signal));
      this.refreshFiles();
      await this.backend.history(this.id, signal, (event) => this.handle(event, event.id));
      notice("");
      const state = (text) => { $("connection").textContent = text; };
      this.backend.follow(this.id, () => this.lastId, signal, (event, id) => this.handle(event, id), state)
        .catch(failed);
    }

    send(events) {
      return this.backend.send(this.id, events);
    }

    head(session) {
      $("session-title").textContent = session.title || (session.agent ? session.agent.name : session.id);
      this.status(session.status);
      $("session-usage").textContent = usage(session.usage);
    }

    status(value) {
      const badge = $("session-status");
      badge.textContent = value;
      badge.className = `status ${value}`;
    }

    handle(event, storedId) {
      if (storedId) {
        if (this.seen.has(storedId)) return;
        this.seen.add(storedId);
      }
      this.render(event);
      if (storedId) this.lastId = storedId;
    }

    add(node) {
      const log = $("log");
      const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      log.append(node);
      if (atBottom) node.scrollIntoView({ block: "end" });
      return node;
    }

    entry(kind, who, eventId, ...children) {
      const props = { class: `entry ${kind}` };
      if (eventId) props["data-event-id"] = eventId;
      return this.add(el("div", props, el("div", { class: "who", textContent: who }), ...children));
    }

    mark(text, kind = "") {
      return this.add(el("div", { class: `mark ${kind}`, textContent: text }));
    }

    render(e) {
      switch (e.type) {
        case "user.message":
          this.entry("user", "You", e.id, boundedProse(blocksText(e.content), `${e.id}.txt`));
          break;
        case "agent.message": {
          const text = boundedProse(blocksText(e.content), `${e.id}.txt`);
          const preview = this.previews.get(e.id);
          this.previews.delete(e.id);
          if (preview) { // the stored message takes its preview's place, moved to where the log has it
            preview.entry.className = "entry agent";
            preview.entry.setAttribute("data-event-id", e.id);
            preview.entry.firstChild.textContent = "Agent";
            preview.text.replaceWith(text);
            this.add(preview.entry);
          } else {
            this.entry("agent", "Agent", e.id, text);
          }
          break;
        }
        case "event_start":
          if (e.event && e.event.type === "agent.message" && !this.seen.has(e.event.id)) {
            const text = el("div", { class: "text" });
            const entry = this.entry("agent preview", "Agent (writing…)", null, text);
            this.previews.set(e.event.id, { entry, text });
          }
          break;
        case "event_delta": {
          const preview = this.previews.get(e.event_id);
          if (preview && e.delta && e.delta.content && preview.text.textContent.length < SHOWN_CHARS) {
            preview.text.append(e.delta.content.text || ""); // the stored message, bounded, replaces it
          }
          break;
        }
        case "agent.thinking":
          this.mark("thinking…");
          break;
        case "agent.tool_use":
        case "agent.mcp_tool_use":
        case "agent.custom_tool_use":
          this.toolUse(e);
          break;
        case "agent.tool_result":
          this.toolResult(e.tool_use_id, e.content, e.is_error);
          this.filesSoon();
          break;
        case "agent.mcp_tool_result":
          this.toolResult(e.mcp_tool_use_id, e.content, e.is_error);
          break;
        case "user.tool_confirmation":
          this.answered(e.tool_use_id, e.result === "allow" ? "allowed" : "denied",
            e.result === "allow" ? "allowed" : `denied${e.deny_message ? ": " + e.deny_message : ""}`);
          break;
        case "user.custom_tool_result":
          this.answered(e.custom_tool_use_id, e.is_error ? "failed" : "done", "answered");
          this.toolResult(e.custom_tool_use_id, e.content, e.is_error);
          break;
        case "user.interrupt":
          this.mark("interrupted");
          break;
        case "session.status_running":
          this.status("running");
          break;
        case "session.status_idle":
          this.idle(e.stop_reason || {});
          break;
        case "session.status_terminated":
          this.status("terminated");
          this.mark("terminated");
          break;
        case "session.error": {
          const error = e.error || {};
          const retry = error.retry_status ? ` (${error.retry_status.type})` : "";
          this.entry("error", `Error: ${error.type || "unknown"}${retry}`, e.id,
            boundedProse(String(error.message || ""), `${e.id}-error.txt`));
          break;
        }
        case "agent.thread_context_compacted":
          this.mark(`context compacted${e.trimmed_before_seq ? `: tool results before event ${e.trimmed_before_seq} trimmed` : ""}`,
            "compaction");
          break;
        case "session.usage":
          $("session-usage").textContent = usage(e.usage);
          break;
        case "session.updated":
          if (typeof e.title === "string") $("session-title").textContent = e.title;
          break;
        case "session.deleted":
          this.mark("this session was deleted");
          this.stop();
          $("connection").textContent = "";
          break;
        default:
          break; // spans and types this page does not know
      }
    }

    idle(reason) {
      this.status("idle");
      for (const preview of this.previews.values()) preview.entry.remove(); // a turn cut short stores no message
      this.previews.clear();
      if (reason.type === "requires_action") {
        for (const id of reason.event_ids || []) {
          this.pending.add(id);
          const tool = this.tools.get(id);
          if (tool && !tool.answer) this.askFor(id, tool);
        }
      } else if (reason.type) {
        this.mark(`idle: ${reason.type}`);
      }
      this.showPending();
      this.filesSoon();
    }

    toolUse(e) {
      const name = e.type === "agent.mcp_tool_use" ? `${e.mcp_server_name}/${e.name}` : e.name;
      const kind = e.type === "agent.custom_tool_use" ? "custom tool" : "tool";
      const state = el("span", { class: "state" });
      const result = el("details", { class: "result", hidden: true }, el("summary", { textContent: "result" }));
      const input = JSON.stringify(e.input || {}, null, 2);
      const node = this.entry("tool", `${kind}: `, e.id, boundedText(input, `${e.id}-input.json`), result);
      node.firstChild.append(el("code", { textContent: name }), state);
      this.tools.set(e.id, { node, state, result, custom: e.type === "agent.custom_tool_use", answer: null });
      if (this.pending.has(e.id)) this.askFor(e.id, this.tools.get(e.id));
    }

    toolResult(useId, content, isError) {
      const tool = this.tools.get(useId);
      const text = blocksText(content);
      if (!tool) {
        this.entry(isError ? "tool error" : "tool", "tool result", null, boundedText(text, `${useId}-result.txt`));
        return;
      }
      tool.result.hidden = false;
      tool.result.querySelector("summary").textContent = `result${isError ? " (error)" : ""}: ${text.length} characters`;
      tool.result.append(boundedText(text, `${useId}-result.txt`));
      if (isError) tool.node.classList.add("error");
      if (!tool.state.textContent || tool.state.classList.contains("allowed")) {
        tool.state.textContent = isError ? "failed" : "done";
        tool.state.className = `state ${isError ? "failed" : "done"}`;
      }
    }

    answered(useId, kind, text) {
      this.pending.delete(useId);
      this.showPending();
      const tool = this.tools.get(useId);
      if (!tool) return;
      if (tool.answer) tool.answer.remove();
      tool.answer = null;
      tool.state.textContent = text;
      tool.state.className = `state ${kind}`;
    }

    showPending() {
      const box = $("pending");
      box.hidden = this.pending.size === 0;
      box.textContent = this.pending.size ? `Waiting for you: ${this.pending.size} tool call(s) below.` : "";
    }

    askFor(useId, tool) {
      tool.state.textContent = tool.custom ? "waiting for your result" : "waiting for your confirmation";
      tool.state.className = "state waiting";
      tool.answer = tool.custom ? this.resultBox(useId) : this.confirmBox(useId);
      tool.node.append(tool.answer);
    }

    confirmBox(useId) {
      const reason = el("input", { type: "text", placeholder: "Why deny (optional, the model reads it)" });
      const send = (result) => {
        const event = { type: "user.tool_confirmation", tool_use_id: useId, result };
        if (result === "deny" && reason.value) event.deny_message = reason.value;
        this.send([event]).catch(failed);
      };
      return el("div", { class: "answer" }, reason, el("div", { class: "buttons" },
        el("button", { type: "button", class: "allow", textContent: "Allow", onclick: () => send("allow") }),
        el("button", { type: "button", class: "deny", textContent: "Deny", onclick: () => send("deny") }),
      ));
    }

    resultBox(useId) {
      const text = el("textarea", { rows: 3, placeholder: "The tool's result" });
      const isError = el("input", { type: "checkbox" });
      const send = () => {
        const event = { type: "user.custom_tool_result", custom_tool_use_id: useId, is_error: isError.checked,
          content: text.value ? [{ type: "text", text: text.value }] : [] };
        this.send([event]).catch(failed);
      };
      return el("div", { class: "answer" }, text, el("div", { class: "buttons" },
        el("label", {}, isError, " is an error"),
        el("button", { type: "button", class: "send-result", textContent: "Send result", onclick: send }),
      ));
    }

    // --- output files ---

    filesSoon() {
      clearTimeout(this.filesTimer);
      this.filesTimer = setTimeout(() => this.refreshFiles(), 300);
    }

    async refreshFiles() {
      try {
        const files = await this.backend.files(this.id, this.abort.signal);
        const items = files.map((file) => el("li", { "data-file-id": file.key },
          el("span", { class: "name", textContent: file.filename }),
          el("span", { class: "size", textContent: bytes(file.size_bytes) }),
          el("button", { type: "button", class: "preview", textContent: "Preview",
            onclick: () => this.preview(file).catch(failed) }),
          el("button", { type: "button", class: "download", textContent: "Download",
            onclick: () => this.download(file).catch(failed) }),
        ));
        $("files").replaceChildren(...items);
        $("no-files").hidden = items.length > 0;
      } catch (error) {
        failed(error);
      }
    }

    async preview(file) {
      const pane = $("file-preview");
      const title = el("h2", { textContent: file.filename });
      const signal = this.abort.signal;
      if (/^image\/(png|jpeg|gif|webp|bmp)$/.test(file.mime_type)) {
        const image = el("img", { alt: file.filename, src: await this.backend.imageUrl(this.id, file, signal) });
        pane.replaceChildren(title, image);
        return;
      }
      const text = await this.backend.text(this.id, file, PREVIEW_BYTES, signal);
      const cut = file.size_bytes > PREVIEW_BYTES
        ? el("p", { class: "truncated", textContent: `The first ${bytes(PREVIEW_BYTES)} of ${bytes(file.size_bytes)}.` })
        : "";
      pane.replaceChildren(title, el("pre", { textContent: text }), cut);
    }

    async download(file) {
      saveBlob(await this.backend.blob(this.id, file, this.abort.signal), file.filename);
    }
  }


  // Buttons, not a form: a sandboxed MCP App frame may not submit forms.
  function wireControls() {
    const send = () => {
      const text = $("message").value;
      if (!text.trim() || !active) return;
      active.send([{ type: "user.message", content: [{ type: "text", text }] }])
        .then(() => { $("message").value = ""; })
        .catch(failed);
    };
    $("send").addEventListener("click", send);
    $("message").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) send();
    });
    $("interrupt").addEventListener("click", () => {
      if (active) active.send([{ type: "user.interrupt" }]).catch(failed);
    });
  }

  wireControls();
  window.SessionViews = { $, el, notice, failed, age, usage, SessionView };
})();
