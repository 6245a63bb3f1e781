// api.js — how the dashboard talks to mocod: authenticated fetch, JSON errors, and live updates
// (server-sent events with a polling fallback). Contract: docs/mocod-api.md.
"use strict";

// An error answer of the API: {"error": {"code", "message", "field"?}} with its HTTP status.
class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
    this.field = field || "";
  }
  // "optim.lr: must be positive" — the field first, when the server named one.
  describe() {
    return this.field ? `${this.field}: ${this.message}` : this.message;
  }
}

// The Bearer token: asked for once when the API answers 401, kept in localStorage.
const Auth = {
  storageKey: "mocod.token",
  pending: null, // the open prompt's promise, shared by every request that met a 401
  dismissed: false, // the user closed the prompt: polling must not reopen it every few seconds

  get token() {
    try { return localStorage.getItem(this.storageKey) || ""; } catch (_) { return ""; }
  },
  set token(value) {
    try {
      if (value) localStorage.setItem(this.storageKey, value);
      else localStorage.removeItem(this.storageKey);
    } catch (_) { /* storage disabled: the token lives only as long as this page */ }
    document.dispatchEvent(new CustomEvent("mocod-token-changed"));
  },

  // Shows the token form (index.html's #token-dialog) and resolves when a token was entered;
  // rejects when the user dismisses it. `refused` is the token the server just turned down:
  // if another request already stored a newer one, the caller simply retries with it.
  ask(refused, { fromUser = false } = {}) {
    if (this.token && this.token !== refused) return Promise.resolve();
    if (this.pending) return this.pending;
    if (this.dismissed && !fromUser) {
      return Promise.reject(new ApiError(401, "unauthorized", "An access token is required (use \"Enter token\")."));
    }
    this.dismissed = false;
    const dialog = document.getElementById("token-dialog");
    const form = dialog.querySelector("form");
    const input = dialog.querySelector("input[name=token]");
    const note = dialog.querySelector(".dialog-note");
    note.textContent = refused ? "The saved token was refused. Enter a valid token."
                               : "This mocod requires an access token (Authorization: Bearer).";
    input.value = "";
    this.pending = new Promise((resolve, reject) => {
      const done = (ok) => {
        form.removeEventListener("submit", onSubmit);
        dialog.removeEventListener("close", onClose);
        if (dialog.open) dialog.close();
        this.pending = null;
        this.dismissed = !ok;
        document.dispatchEvent(new CustomEvent("mocod-token-changed"));
        ok ? resolve() : reject(new ApiError(401, "unauthorized", "An access token is required."));
      };
      const onSubmit = (e) => {
        e.preventDefault();
        const value = input.value.trim();
        if (!value) { input.focus(); return; }
        this.token = value;
        done(true);
      };
      // A dialog's "close" event is dispatched after close() returns: the close of the
      // previous prompt can arrive once this one is already open (a refused token asks again
      // at once). Only a close that left the dialog closed is the user's dismissal.
      const onClose = () => { if (!dialog.open) done(false); };
      form.addEventListener("submit", onSubmit);
      dialog.addEventListener("close", onClose);
      dialog.showModal();
      input.focus();
    });
    return this.pending;
  },
};

const Api = {
  // fetch() with the Bearer token; a 401 asks for a token and retries with it.
  async fetch(path, options = {}) {
    for (;;) {
      const headers = new Headers(options.headers || {});
      const used = Auth.token;
      if (used) headers.set("Authorization", `Bearer ${used}`);
      const res = await fetch(path, { ...options, headers });
      if (res.status !== 401) return res;
      await Auth.ask(used);
    }
  },

  // The parsed JSON body of a successful answer (null for 204); ApiError otherwise.
  async json(path, options = {}) {
    const res = await this.fetch(path, options);
    if (res.status === 204) return null;
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
    if (!res.ok) {
      const e = (body && body.error) || {};
      throw new ApiError(res.status, e.code, e.message || text.trim() || res.statusText, e.field);
    }
    return body;
  },

  post(path, body) {
    const init = { method: "POST" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { "Content-Type": "application/json" };
    }
    return this.json(path, init);
  },

  job: (id) => Api.json(`/api/v1/jobs/${id}`),
  checkpoints: (id) => Api.json(`/api/v1/jobs/${id}/checkpoints`),
  metricKeys: (id) => Api.json(`/api/v1/jobs/${id}/metrics`),

  // Every point of one metric after `sinceStep` (following next_page_token), or at most
  // `downsample` points spread over the whole history.
  async metricPoints(id, key, { sinceStep = null, downsample = null } = {}) {
    const points = [];
    let token = null;
    for (let page = 0; page < 100; page++) {
      const q = new URLSearchParams({ key });
      if (sinceStep !== null) q.set("since_step", sinceStep);
      if (downsample) q.set("downsample", downsample);
      else q.set("max_results", 1000);
      if (token) q.set("page_token", token);
      const body = await this.json(`/api/v1/jobs/${id}/metrics?${q}`);
      points.push(...(body.points || []));
      token = body.next_page_token;
      if (!token) break;
    }
    return points;
  },

  // Downloads a URL with the token (an <a href> cannot carry the Authorization header).
  async download(url, filename) {
    const res = await this.fetch(url);
    if (!res.ok) throw new ApiError(res.status, "", `download failed: HTTP ${res.status}`);
    const blobUrl = URL.createObjectURL(await res.blob());
    const a = Util.el("a", { href: blobUrl, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
  },
};

// Live updates of one event stream. Uses EventSource while it is connected and calls onPoll
// every pollMs while it is not (before it opens, after errors, or when a token is in use).
//
// Why polling when a token is in use: EventSource cannot send an Authorization header, and the
// API takes the token only from that header, so an authenticated dashboard polls instead.
// Each time the stream opens onPoll runs once, to pick up what happened before it was subscribed.
class LiveFeed {
  constructor(url, { onEvent, onPoll, pollMs = 4000 }) {
    this.url = url;
    this.onEvent = onEvent;
    this.onPoll = onPoll;
    this.pollMs = pollMs;
    this.es = null;
    this.live = false;
    this.stopped = false;
    this.retry = null;
    this.timer = null;
  }

  start() {
    this.openStream();
    this.timer = setInterval(() => { if (!this.live) this.poll(); }, this.pollMs);
    LiveFeed.showMode(this);
    return this;
  }

  poll() {
    Promise.resolve().then(() => this.onPoll()).catch((e) => console.warn("poll failed", e));
  }

  openStream() {
    if (this.stopped || Auth.token || !window.EventSource) return;
    const es = new EventSource(this.url);
    this.es = es;
    // On every open, the first included, poll once: whatever happened before the stream was
    // subscribed (between a view's first load and now, or while it was down) arrives no more.
    es.onopen = () => {
      this.live = true;
      LiveFeed.showMode(this);
      this.poll();
    };
    for (const kind of LiveFeed.kinds) {
      es.addEventListener(kind, (e) => {
        // "error" is also EventSource's own connection-error event, which carries no data.
        if (e.data === undefined) return;
        let data;
        try { data = JSON.parse(e.data); } catch (_) { return; }
        this.onEvent(kind, data);
      });
    }
    es.onerror = () => {
      this.live = false;
      LiveFeed.showMode(this);
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. a 401 or a non-stream answer): poll, and try again later.
        es.close();
        this.es = null;
        clearTimeout(this.retry);
        this.retry = setTimeout(() => this.openStream(), 15000);
      }
    };
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.retry);
    if (this.es) this.es.close();
    this.es = null;
    this.live = false;
  }

  // The header's indicator: "live" while the stream is open, "polling" otherwise.
  static showMode(feed) {
    const node = document.getElementById("live-mode");
    if (!node) return;
    node.textContent = feed.live ? "live" : "polling";
    node.className = feed.live ? "live-on" : "live-off";
    node.title = feed.live ? "Updates arrive as server-sent events"
      : (Auth.token ? "Polling every few seconds (event streams cannot send the access token)"
                    : "Polling every few seconds until the event stream connects");
  }
}
// The event kinds of docs/mocod-api.md: the daemon's `state` plus the worker's own.
LiveFeed.kinds = ["state", "start", "metric", "eval", "checkpoint", "log", "done", "error"];
