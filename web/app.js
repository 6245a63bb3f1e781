// app.js — the dashboard's entry point: hash routes (#/, #/?state=running, #/submit,
// #/jobs/<id>) mount one view at a time into <main>, tearing the previous one down (its event
// stream, timers, charts and log stream) first.
"use strict";

const App = {
  teardown: null,

  route() {
    if (App.teardown) { App.teardown(); App.teardown = null; }
    const root = document.getElementById("view");
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    const params = new URLSearchParams(query || "");
    const jobMatch = path.match(/^\/jobs\/(\d+)\/?$/);
    document.querySelectorAll("nav a").forEach((a) => a.removeAttribute("aria-current"));
    if (jobMatch) {
      App.teardown = JobView.mount(root, Number(jobMatch[1]));
    } else if (path === "/" || path === "" || path === "/submit") {
      if (path === "/submit") params.set("submit", "1");
      document.title = "Jobs — mocod";
      const current = document.querySelector(path === "/submit" ? "nav a[href='#/submit']" : "nav a[href='#/']");
      if (current) current.setAttribute("aria-current", "page");
      App.teardown = JobListView.mount(root, params);
    } else {
      document.title = "Not found — mocod";
      root.replaceChildren(Util.el("h1", {}, "Page not found"),
        Util.el("p", {}, Util.el("a", { href: "#/" }, "Back to the jobs")));
    }
    // Move focus to the new page for keyboard and screen-reader users (not on the first load).
    if (App.started) root.focus({ preventScroll: true });
    App.started = true;
  },

  // The header's token controls: "Forget token" while one is stored, "Enter token" after the
  // prompt was dismissed.
  showToken() {
    document.getElementById("forget-token").hidden = !Auth.token;
    document.getElementById("enter-token").hidden = Boolean(Auth.token) || !Auth.dismissed;
  },

  async showVersion() {
    try {
      const res = await fetch("/healthz");
      const h = await res.json();
      document.getElementById("version").textContent = h.version ? `mocod ${h.version}` : "";
    } catch (_) { /* the header just shows no version */ }
  },
};

window.addEventListener("hashchange", App.route);
document.addEventListener("mocod-token-changed", App.showToken);
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("forget-token").addEventListener("click", () => {
    Auth.token = "";
    App.route();
  });
  document.getElementById("enter-token").addEventListener("click", () => {
    Auth.ask("", { fromUser: true }).then(App.route, () => {});
  });
  App.showToken();
  App.showVersion();
  if (typeof Chart === "undefined") {
    document.getElementById("view").before(Util.el("p", { class: "error", role: "alert" },
      "Chart.js did not load (/vendor/chart.js): charts are unavailable."));
  }
  App.route();
});
