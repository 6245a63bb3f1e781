// job.js — the page of one job (#/jobs/<id>): state, progress and actions, live metric charts,
// the log tail, checkpoints with download links, the resolved spec and the state history.
"use strict";

const JobView = {
  // Builds the page into `root`; returns the function that tears it down.
  mount(root, id) {
    const { el } = Util;
    const view = {
      job: null,
      header: el("div", { class: "job-header" }, el("p", {}, "Loading…")),
      message: el("p", { class: "message", role: "status", "aria-live": "polite" }),
      charts: el("div", { class: "charts" }),
      logPre: el("pre", { class: "log", tabindex: 0, "aria-label": "log tail" }),
      logStatus: el("p", { class: "muted", "aria-live": "polite" }),
      ckpts: el("div", { class: "ckpt-wrap" }, el("p", { class: "muted" }, "Loading…")),
      spec: el("pre", { class: "spec" }),
      transitions: el("div", {}),
    };
    root.replaceChildren(
      el("p", { class: "crumbs" }, el("a", { href: "#/" }, "← All jobs")),
      view.header, view.message,
      el("section", { "aria-labelledby": "metrics-title" },
        el("h2", { id: "metrics-title" }, "Metrics"), view.charts),
      el("section", { "aria-labelledby": "log-title" },
        el("h2", { id: "log-title" }, "Log (last 200 lines)"), view.logStatus, view.logPre),
      el("section", { "aria-labelledby": "ckpt-title" },
        el("h2", { id: "ckpt-title" }, "Checkpoints"), view.ckpts),
      el("details", { class: "block" }, el("summary", {}, "Resolved spec"), view.spec),
      el("details", { class: "block" }, el("summary", {}, "State history"), view.transitions),
    );

    const charts = new MetricCharts(view.charts, id);
    const isFinished = () => view.job !== null && JobStates.isTerminal(view.job.state);
    let log = null;
    let stopped = false;
    let startedAt = null; // a new start (resume, restart) drops metric history after its checkpoint

    const refreshJob = async () => {
      try {
        const job = await Api.job(id);
        if (stopped) return;
        view.job = job;
        charts.setJob(job);
        JobView.renderHeader(view, job, actions);
        view.spec.textContent = JSON.stringify(job.spec || {}, null, 2);
        view.transitions.replaceChildren(JobView.transitionsTable(job.transitions || []));
        document.title = `#${job.id} ${job.name} — mocod`;
        if (!log) log = new LogTail(view.logPre, view.logStatus, id, isFinished).start();
        else if (!isFinished()) log.ensureRunning(); // a failed job resumed: follow it again
        if (startedAt !== null && job.started_at !== startedAt && charts.loaded) chartsReloadSoon();
        startedAt = job.started_at;
      } catch (e) {
        if (stopped) return;
        if (e.status === 404) {
          root.replaceChildren(el("p", { class: "crumbs" }, el("a", { href: "#/" }, "← All jobs")),
            el("h1", {}, `Job ${id} not found`), el("p", {}, e.describe()));
          stop();
        } else {
          view.message.textContent = `Could not load the job: ${e.message}`;
        }
      }
    };
    const refreshCheckpoints = async () => {
      try {
        const body = await Api.checkpoints(id);
        if (!stopped) view.ckpts.replaceChildren(JobView.checkpointsTable(id, body.checkpoints || []));
      } catch (e) {
        if (!stopped && e.status !== 404) view.ckpts.replaceChildren(el("p", { class: "error" }, e.describe()));
      }
    };
    const reloadCharts = () => charts.load().catch((e) => {
      if (stopped) return;
      view.message.textContent = `Could not load metrics: ${e.message}`;
      setTimeout(() => { if (!stopped && !charts.loaded) reloadCharts(); }, 5000);
    });
    const jobSoon = Util.throttle(refreshJob, 1000);
    const checkpointsSoon = Util.throttle(refreshCheckpoints, 1000);
    const chartsReloadSoon = Util.throttle(reloadCharts, 1000);

    const actions = {
      async run(action) {
        view.message.textContent = "";
        if (action === "cancel" && !(await confirmDialog(`Cancel job #${id}? It stops after saving a checkpoint and cannot be resumed.`))) return;
        try {
          await Api.post(`/api/v1/jobs/${id}/${action}`);
          view.message.textContent = `${action} requested.`;
        } catch (e) {
          view.message.textContent = `Could not ${action}: ${e.describe()}`;
        }
        refreshJob();
      },
    };

    const feed = new LiveFeed(`/api/v1/jobs/${id}/events`, {
      onEvent(kind, data) {
        if (data.job !== undefined && Number(data.job) !== Number(id)) return;
        if (kind === "metric" || kind === "eval") { charts.onEvent(kind, data); jobSoon(); }
        else if (kind === "start") { chartsReloadSoon(); jobSoon(); }
        else if (kind === "checkpoint") { checkpointsSoon(); jobSoon(); }
        else if (kind === "state") { refreshJob(); checkpointsSoon(); }
        else if (kind === "done" || kind === "error") { jobSoon(); checkpointsSoon(); }
      },
      async onPoll() {
        const wasFinished = isFinished();
        await refreshJob();
        if (wasFinished && isFinished()) return; // nothing else changes until it is resumed
        await charts.poll();
        await refreshCheckpoints();
      },
    });

    const stop = () => {
      stopped = true;
      feed.stop();
      if (log) log.stop();
      jobSoon.cancel();
      checkpointsSoon.cancel();
      chartsReloadSoon.cancel();
      charts.destroy();
    };

    feed.start();
    refreshJob().then(() => { if (!stopped) { reloadCharts(); refreshCheckpoints(); } });
    return stop;
  },

  renderHeader(view, job, actions) {
    const { el } = Util;
    const buttons = [];
    if (JobStates.canPause(job.state)) buttons.push(["pause", "Pause"]);
    if (JobStates.canResume(job.state)) buttons.push(["resume", "Resume"]);
    if (JobStates.canCancel(job.state)) buttons.push(["cancel", "Cancel…"]);
    const last = job.last || {};
    const fact = (label, value, attrs) => el("div", { class: "fact" }, el("dt", {}, label), el("dd", attrs || {}, value));
    view.header.replaceChildren(...[
      el("div", { class: "job-title" },
        el("h1", {}, `#${job.id} ${job.name}`),
        el("span", { id: "job-state", class: `badge state-${job.state}`, "data-state": job.state }, job.state),
        el("span", { class: "kind" }, job.kind),
        el("div", { class: "actions" }, buttons.map(([action, label]) =>
          el("button", { type: "button", class: `btn btn-${action}`, "data-action": action,
                         onclick: () => actions.run(action) }, label)))),
      job.reason ? el("p", { class: job.state === "failed" ? "reason error" : "reason", role: job.state === "failed" ? "alert" : null },
        el("strong", {}, job.state === "failed" ? "Failed: " : "Reason: "), job.reason) : null,
      el("div", { class: "job-progress" }, progressBar(job.progress, `job ${job.id} progress`)),
      el("dl", { class: "facts" },
        fact("Step", `${job.step ?? "—"} / ${job.total_steps ?? "—"}`, { id: "job-step" }),
        fact("Epoch", `${job.epoch ?? "—"} / ${job.epochs ?? "—"}`),
        fact("ETA", JobStates.isTerminal(job.state) ? "—" : Util.duration(job.eta_s)),
        fact("Images/s", Util.num(job.images_per_s, 1)),
        fact("Loss", Util.num(last.loss, 4)),
        fact("Restarts", `${job.restarts ?? 0} / ${job.max_restarts ?? "—"}`),
        fact("Priority", job.priority ?? 0),
        fact("GPUs", job.gpus && job.gpus.length ? job.gpus.join(", ") : "CPU"),
        fact("Created", el("time", { title: Util.isoTime(job.created_at) }, Util.time(job.created_at))),
        fact("Started", el("time", { title: Util.isoTime(job.started_at) }, Util.time(job.started_at))),
        fact("Finished", el("time", { title: Util.isoTime(job.finished_at) }, Util.time(job.finished_at))),
        job.after ? fact("After job", el("a", { href: `#/jobs/${job.after}` }, `#${job.after}`)) : null),
    ].filter(Boolean));
  },

  checkpointsTable(id, list) {
    const { el } = Util;
    if (!list.length) return el("p", { class: "muted" }, "No checkpoints yet.");
    const base = `/api/v1/jobs/${id}/checkpoints/`;
    const link = (href, name, label) => el("a", {
      href, download: name, class: "download",
      // Plain links cannot send the token: with one, download through fetch instead.
      onclick: (e) => {
        if (!Auth.token) return;
        e.preventDefault();
        Api.download(href, name).catch((err) => alert(err.message));
      },
    }, label);
    return el("div", { class: "table-wrap" }, el("table", { class: "ckpt-table" },
      el("thead", {}, el("tr", {}, ["Name", "Step", "Epoch", "Size", "SHA-256", "Written", "Download"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, list.map((c) => el("tr", { "data-name": c.name, "data-size": c.size },
        el("td", { "data-label": "Name" }, el("code", {}, c.name)),
        el("td", { "data-label": "Step" }, c.step ?? "—"),
        el("td", { "data-label": "Epoch" }, c.epoch ?? "—"),
        el("td", { "data-label": "Size", title: `${c.size} bytes` }, Util.bytes(c.size)),
        el("td", { "data-label": "SHA-256" }, c.sha256
          ? el("code", { title: c.sha256 }, `${c.sha256.slice(0, 12)}…`) : "—"),
        el("td", { "data-label": "Written" }, el("time", { title: Util.isoTime(c.mtime) }, Util.time(c.mtime))),
        el("td", { "data-label": "Download", class: "links" },
          link(base + encodeURIComponent(c.name), c.name, "file"), " ",
          link(`${base}${encodeURIComponent(c.name)}?format=backbone`,
            c.name.replace(/(\.safetensors)?$/, "-backbone.safetensors"), "backbone"))))),
    ));
  },

  transitionsTable(list) {
    const { el } = Util;
    if (!list.length) return el("p", { class: "muted" }, "No transitions recorded.");
    return el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["When", "From", "To", "Reason"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, list.map((t) => el("tr", {},
        el("td", { "data-label": "When" }, el("time", { title: Util.isoTime(t.ts) }, Util.time(t.ts))),
        el("td", { "data-label": "From" }, t.from ? stateBadge(t.from) : "—"),
        el("td", { "data-label": "To" }, stateBadge(t.to)),
        el("td", { "data-label": "Reason" }, t.reason || "")))),
    ));
  },
};

// An in-page confirmation (index.html's #confirm-dialog); resolves true on "Yes".
function confirmDialog(text) {
  const dialog = document.getElementById("confirm-dialog");
  dialog.querySelector(".dialog-note").textContent = text;
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
    dialog.querySelector("button[value=no]").focus();
  });
}
