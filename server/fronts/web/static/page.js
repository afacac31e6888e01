// The browser page at /ui: logging in, the session list, and the session view (view.js) over the REST API.
//
// The token lives in the tab's sessionStorage and travels only in the Authorization header, never in a URL.
// The event stream is read with fetch for the same reason (EventSource cannot send a header); it resumes with
// Last-Event-ID after the last event shown, so a dropped connection or a reload loses nothing.
"use strict";

(() => {
  const { $, el, notice, failed, age, usage, SessionView } = window.SessionViews;
  const TOKEN_KEY = "managed-sessions.token";
  const PAGE = 100; // events per history request (the API's largest page)
  const RECONNECT_MS = [250, 500, 1000, 2000, 5000];
  const LIST_REFRESH_MS = 5000;

  // --- the REST API --------------------------------------------------------------------------------------

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  async function api(path, { method = "GET", json, signal, headers = {} } = {}) {
    const sent = { authorization: "Bearer " + token(), ...headers };
    if (json !== undefined) sent["content-type"] = "application/json";
    const response = await fetch(path, {
      method, headers: sent, signal, cache: "no-store",
      body: json === undefined ? undefined : JSON.stringify(json),
    });
    if (response.status === 401) {
      logOut("The server refused the token; log in again.");
      throw Object.assign(new Error("unauthorized"), { quiet: true, status: 401 });
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && body.error && body.error.message) message = body.error.message;
      } catch (_) { /* not the API's error body */ }
      throw Object.assign(new Error(message), { status: response.status });
    }
    return response;
  }

  const apiJson = async (path, options) => (await api(path, options)).json();
  const sessionPath = (id) => `/v1/sessions/${encodeURIComponent(id)}`;
  const filePath = (file) => `/v1/files/${encodeURIComponent(file.key)}/content`;

  // Server-Sent Events from a fetch response; calls onMessage(data, id) for each `message` event.
  async function readSse(response, onMessage) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let scanned = 0; // where to look for the next frame's end: a long frame is never rescanned from its start
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n", Math.max(0, scanned - 1))) !== -1) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        scanned = 0;
        const fields = { event: "message", id: null, data: [] };
        for (const line of frame.split("\n")) {
          const colon = line.indexOf(":");
          if (colon <= 0) continue;
          const name = line.slice(0, colon);
          const text = line.slice(colon + 1).replace(/^ /, "");
          if (name === "data") fields.data.push(text);
          else if (name === "event") fields.event = text;
          else if (name === "id") fields.id = text;
        }
        if (fields.event === "message" && fields.data.length) onMessage(JSON.parse(fields.data.join("\n")), fields.id);
      }
      scanned = buffer.length;
    }
  }

  const restBackend = {
    session: (id, signal) => apiJson(sessionPath(id), { signal }),

    async history(id, signal, onEvent) {
      let page = null;
      do {
        const query = `limit=${PAGE}&order=asc` + (page ? `&page=${encodeURIComponent(page)}` : "");
        const listed = await apiJson(`${sessionPath(id)}/events?${query}`, { signal });
        for (const event of listed.data) onEvent(event);
        page = listed.next_page;
      } while (page);
    },

    async follow(id, lastId, signal, onEvent, onState) {
      for (let attempt = 0; !signal.aborted; attempt++) {
        try {
          const headers = lastId() ? { "last-event-id": lastId() } : {};
          const response = await api(`${sessionPath(id)}/events/stream?event_deltas[]=agent.message`,
            { signal, headers });
          onState("live");
          attempt = 0;
          if (!lastId()) {
            // Without a cursor the stream starts after the newest event when it opened; anything appended
            // between the history read and that moment is read again here (what was shown is skipped).
            await restBackend.history(id, signal, (event) => onEvent(event, event.id));
          }
          await readSse(response, onEvent);
        } catch (error) {
          if (signal.aborted || error.status === 401 || error.status === 404 || error.status === 400) throw error;
        }
        if (signal.aborted) return;
        onState("reconnecting…");
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)]));
      }
    },

    send: (id, events) => apiJson(`${sessionPath(id)}/events`, { method: "POST", json: { events } }),

    async files(id, signal) {
      const listed = await apiJson(`/v1/files?scope_id=${encodeURIComponent(id)}&limit=1000`, { signal });
      return listed.data.map((file) => ({ ...file, key: file.id }));
    },

    blob: async (id, file, signal) => (await api(filePath(file), { signal })).blob(),

    imageUrl: async (id, file, signal) => URL.createObjectURL(await restBackend.blob(id, file, signal)),

    async text(id, file, maxBytes, signal) {
      const reader = (await api(filePath(file), { signal })).body.getReader();
      const chunks = [];
      let size = 0;
      while (size < maxBytes) {
        const { value, done } = await reader.read();
        if (done) break;
        chunks.push(value);
        size += value.length;
      }
      reader.cancel().catch(() => {});
      return new TextDecoder().decode(await new Blob(chunks).slice(0, maxBytes).arrayBuffer());
    },
  };

  // --- views ---------------------------------------------------------------------------------------------

  let current = null; // the open view; stop() ends its timers and streams

  function show(view) {
    for (const id of ["login-view", "list-view", "session-view"]) $(id).hidden = id !== view;
    $("logout").hidden = view === "login-view";
    if (view !== "session-view") $("connection").textContent = "";
  }

  function logOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (current) current.stop();
    current = null;
    show("login-view");
    notice(message || "");
  }

  function route() {
    if (current) current.stop();
    current = null;
    if (!token()) {
      show("login-view");
      return;
    }
    const match = /^#\/sessions\/([A-Za-z0-9_]+)$/.exec(location.hash);
    if (match) {
      show("session-view");
      current = new SessionView(restBackend, match[1]);
    } else {
      show("list-view");
      current = new ListView();
    }
    current.start().catch(failed);
  }

  class ListView {
    constructor() {
      this.timer = null;
    }

    async start() {
      await this.refresh();
      this.timer = setInterval(() => this.refresh().catch(failed), LIST_REFRESH_MS);
    }

    stop() {
      clearInterval(this.timer);
    }

    async refresh() {
      const listed = await apiJson("/v1/sessions?limit=100");
      const rows = listed.data.map((s) => {
        const row = el("tr", { "data-session-id": s.id },
          el("td", {}, el("span", { class: `status ${s.status}`, textContent: s.status })),
          el("td", { textContent: s.title || s.id }),
          el("td", { textContent: s.agent ? s.agent.name : "" }),
          el("td", { textContent: age(s.created_at), title: s.created_at }),
          el("td", { textContent: usage(s.usage) }),
        );
        row.addEventListener("click", () => { location.hash = `#/sessions/${s.id}`; });
        return row;
      });
      $("sessions").replaceChildren(...rows);
      $("no-sessions").hidden = rows.length > 0;
      notice("");
    }
  }

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    notice("");
    route();
  });
  $("logout").addEventListener("click", () => logOut(""));
  window.addEventListener("hashchange", route);
  route();
})();
