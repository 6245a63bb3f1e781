// joblist.js — the home page (#/): the queue and machine at a glance, the job list with a state
// filter, kept current from the all-jobs event stream (or polling), and the submit form.
"use strict";

// The filter's choices: a label and the states it passes to ?state= (empty: all).
const JOB_FILTERS = [
  ["all", "All", []],
  ["active", "Active", JobStates.active],
  ["finished", "Finished", JobStates.terminal],
  ...JobStates.all.map((s) => [s, s, [s]]),
];
const LIST_PAGE = 50;

const JobListView = {
  mount(root, params) {
    const { el } = Util;
    let filter = JOB_FILTERS.find((f) => f[0] === params.get("state")) ? params.get("state") : "all";
    let shown = LIST_PAGE;   // rows the user asked to see (grows with "Load more")
    let nextToken = null;
    let stopped = false;

    const select = el("select", { id: "state-filter" },
      JOB_FILTERS.map(([value, label]) => el("option", { value, selected: value === filter }, label)));
    const summary = el("p", { id: "queue-summary", class: "summary", "aria-live": "polite" });
    const count = el("span", { class: "muted", "aria-live": "polite" });
    const table = el("div", { class: "table-wrap" }, el("p", { class: "muted" }, "Loading…"));
    const more = el("button", { type: "button", class: "btn", hidden: true }, "Load more");
    const error = el("p", { class: "error", role: "alert", hidden: true });
    const submitBox = el("section", { id: "submit", "aria-labelledby": "submit-title" });

    root.replaceChildren(
      el("div", { class: "list-head" },
        el("h1", {}, "Jobs"),
        el("a", { href: "#/submit", class: "btn btn-primary" }, "Submit a job")),
      summary,
      el("div", { class: "toolbar" },
        el("label", { for: "state-filter" }, "State "), select, count),
      error, table, more, submitBox);

    const reload = async () => {
      const states = JOB_FILTERS.find((f) => f[0] === filter)[2];
      const q = new URLSearchParams({ limit: Math.min(500, shown) });
      if (states.length) q.set("state", states.join(","));
      try {
        const body = await Api.json(`/api/v1/jobs?${q}`);
        if (stopped) return;
        error.hidden = true;
        nextToken = body.next_page_token || null;
        JobListView.renderTable(table, body.jobs || []);
        const n = (body.jobs || []).length;
        count.textContent = `${n}${nextToken ? "+" : ""} ${n === 1 && !nextToken ? "job" : "jobs"}`;
        more.hidden = !nextToken;
      } catch (e) {
        if (stopped) return;
        error.textContent = `Could not load jobs: ${e.message}`;
        error.hidden = false;
      }
      JobListView.renderSummary(summary).catch(() => { summary.textContent = ""; });
    };
    const reloadSoon = Util.throttle(reload, 1000);

    select.addEventListener("change", () => {
      filter = select.value;
      shown = LIST_PAGE;
      // Keep the filter in the address without remounting the page (and the form with it).
      history.replaceState(null, "", filter === "all" ? "#/" : `#/?state=${filter}`);
      reload();
    });
    more.addEventListener("click", () => { shown = Math.min(500, shown + LIST_PAGE); reload(); });

    const feed = new LiveFeed("/api/v1/events", {
      onEvent(kind) {
        if (kind === "state" || kind === "metric" || kind === "eval" || kind === "done" || kind === "start") reloadSoon();
      },
      onPoll: reload,
    }).start();

    SubmitForm.mount(submitBox, { focus: params.get("submit") === "1" });
    reload();

    return () => { stopped = true; feed.stop(); reloadSoon.cancel(); };
  },

  renderTable(wrap, jobs) {
    const { el } = Util;
    if (!jobs.length) {
      wrap.replaceChildren(el("p", { class: "muted" }, "No jobs match this filter."));
      return;
    }
    const cols = ["ID", "State", "Name", "Kind", "Priority", "Progress", "Step", "Loss", "Img/s", "ETA", "Created"];
    wrap.replaceChildren(el("table", { id: "jobs-table", class: "jobs" },
      el("caption", { class: "visually-hidden" }, "Jobs, newest first"),
      el("thead", {}, el("tr", {}, cols.map((c) => el("th", { scope: "col" }, c)))),
      el("tbody", {}, jobs.map((j) => el("tr", { "data-job": j.id, "data-state": j.state },
        el("td", { "data-label": "ID" }, el("a", { href: `#/jobs/${j.id}` }, `#${j.id}`)),
        el("td", { "data-label": "State" }, stateBadge(j.state)),
        el("td", { "data-label": "Name", class: "name" }, el("a", { href: `#/jobs/${j.id}` }, j.name)),
        el("td", { "data-label": "Kind" }, j.kind),
        el("td", { "data-label": "Priority", class: "num" }, j.priority ?? 0),
        el("td", { "data-label": "Progress", class: "progress-cell" }, progressBar(j.progress, `job ${j.id} progress`)),
        el("td", { "data-label": "Step", class: "num" }, `${j.step ?? "—"} / ${j.total_steps ?? "—"}`),
        el("td", { "data-label": "Loss", class: "num" }, Util.num(j.last && j.last.loss, 4)),
        el("td", { "data-label": "Img/s", class: "num" }, Util.num(j.images_per_s, 1)),
        el("td", { "data-label": "ETA", class: "num" }, JobStates.isTerminal(j.state) ? "—" : Util.duration(j.eta_s)),
        el("td", { "data-label": "Created" }, el("time", { title: Util.isoTime(j.created_at) }, Util.time(j.created_at))),
      ))),
    ));
  },

  // "Running: #3 foo · Queued: #5 bar, #6 baz · CPU slots 1/2 · GPUs 0/1 in use".
  async renderSummary(node) {
    const { el } = Util;
    const [queue, devices] = await Promise.all([
      Api.json("/api/v1/queue").catch(() => null),
      Api.json("/api/v1/devices").catch(() => null),
    ]);
    const jobLinks = (list) => list.length
      ? list.slice(0, 5).flatMap((j, i) => [i ? ", " : "", el("a", { href: `#/jobs/${j.id}` }, `#${j.id} ${j.name}`)])
          .concat(list.length > 5 ? [` and ${list.length - 5} more`] : [])
      : ["none"];
    const parts = [];
    if (queue) {
      parts.push(el("span", {}, el("strong", {}, "Running: "), ...jobLinks(queue.running || [])));
      parts.push(el("span", {}, el("strong", {}, "Queued (in start order): "), ...jobLinks(queue.queued || [])));
    }
    if (devices) {
      const gpus = devices.gpus || [];
      const cpu = devices.cpu || {};
      parts.push(el("span", {}, el("strong", {}, "CPU slots: "), `${cpu.used ?? "?"} / ${cpu.slots ?? "?"} in use`));
      parts.push(el("span", {}, el("strong", {}, "GPUs: "),
        gpus.length ? `${gpus.filter((g) => g.job !== null && g.job !== undefined).length} / ${gpus.length} in use` : "none"));
    }
    node.replaceChildren(...parts);
  },
};
