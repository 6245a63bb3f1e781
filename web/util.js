// util.js — small DOM and formatting helpers shared by the dashboard's views.
"use strict";

const Util = {
  // el("a", {href: "#/", class: "x", onclick: fn}, "text", child, ...) — builds an element.
  // Attributes named on* become listeners; null/undefined/false attributes are left out.
  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  },

  // Seconds → "45 s", "12 min 05 s", "3 h 07 min", "2 d 4 h".
  duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return "—";
    s = Math.max(0, Math.round(s));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
    if (h < 24) return `${h} h ${String(m % 60).padStart(2, "0")} min`;
    return `${d} d ${h % 24} h`;
  },

  // Unix seconds → local time: "14:03:22" today, else "2026-11-03 14:03".
  time(ts) {
    if (!ts) return "—";
    const d = new Date(ts * 1000), now = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    if (d.toDateString() === now.toDateString()) return `${hm}:${pad(d.getSeconds())}`;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
  },

  // Unix seconds → full ISO text for title attributes.
  isoTime(ts) {
    return ts ? new Date(ts * 1000).toISOString() : "";
  },

  bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${i ? n.toFixed(1) : n} ${units[i]}`;
  },

  // A number with sensible precision for a table cell; "—" when missing.
  num(v, digits = 3) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
    return String(Number(v.toFixed(digits)));
  },

  percent(fraction) {
    if (fraction === null || fraction === undefined || !isFinite(fraction)) return "—";
    return `${(100 * fraction).toFixed(1)} %`;
  },

  // Calls fn at most once per `ms`, trailing call included: live events can arrive many times a
  // second, and each would otherwise refetch the same job or list.
  throttle(fn, ms) {
    let timer = null, pending = false, last = 0;
    const run = () => { timer = null; pending = false; last = Date.now(); fn(); };
    const wrapped = () => {
      if (timer) { pending = true; return; }
      const wait = Math.max(0, last + ms - Date.now());
      timer = setTimeout(run, wait);
    };
    wrapped.cancel = () => { if (timer) clearTimeout(timer); timer = null; pending = false; };
    return wrapped;
  },
};

// Job states (docs/mocod-api.md) and which actions each allows.
const JobStates = {
  all: ["queued", "starting", "running", "pausing", "paused", "canceling", "completed", "failed", "canceled"],
  active: ["queued", "starting", "running", "pausing", "paused", "canceling"],
  terminal: ["completed", "failed", "canceled"],
  canCancel: (s) => ["queued", "starting", "running", "pausing", "paused"].includes(s),
  canPause: (s) => ["queued", "running"].includes(s),
  canResume: (s) => ["paused", "failed"].includes(s),
  isTerminal: (s) => ["completed", "failed", "canceled"].includes(s),
};

// A state badge: colour plus the word itself, so state never depends on colour alone.
function stateBadge(state) {
  return Util.el("span", { class: `badge state-${state}` }, state);
}

// A progress bar with its percent as text, exposed to assistive technology as a progressbar.
function progressBar(fraction, label) {
  const pct = fraction === null || fraction === undefined || !isFinite(fraction)
    ? null : Math.max(0, Math.min(1, fraction)) * 100;
  return Util.el("div", {
    class: "progress", role: "progressbar", "aria-label": label || "progress",
    "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": pct === null ? null : pct.toFixed(1),
  },
  Util.el("div", { class: "progress-fill", style: `width:${pct === null ? 0 : pct.toFixed(1)}%` }),
  Util.el("span", { class: "progress-text" }, pct === null ? "—" : `${pct.toFixed(1)} %`));
}
