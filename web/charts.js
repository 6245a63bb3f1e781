// charts.js — a job's metric charts (Chart.js 3, served at /vendor/chart.js): history loaded
// once with `downsample=`, then points appended live from `metric` / `eval` events (or, without
// an event stream, from polling with `since_step=`) without reloading.
"use strict";

// Which metric keys each chart shows (docs/mocod-api.md "Metric keys"). A series lists
// alternative keys: lincls jobs report their training accuracy as top1/top5, pretraining as
// acc1/acc5; the first key the job has is used.
const CHART_DEFS = [
  { id: "loss", title: "Training loss", yTitle: "loss",
    series: [{ keys: ["loss"], label: "loss" }],
    empty: (job) => (job && JobStates.isTerminal(job.state) ? "This job recorded no loss points."
      : "No loss points yet: they appear once the job logs its first steps.") },
  { id: "acc", title: "Contrastive accuracy (train, %)", yTitle: "%",
    // a lincls job's training accuracy is its classifier's, on the labels
    titleFor: (job) => (job && job.kind === "lincls" ? "Classifier accuracy (train, %)"
      : "Contrastive accuracy (train, %)"),
    series: [{ keys: ["acc1", "top1"], label: "top-1" }, { keys: ["acc5", "top5"], label: "top-5" }],
    empty: () => "No training accuracy yet." },
  { id: "knn", title: "kNN accuracy (%)", yTitle: "%",
    series: [{ keys: ["knn_top1"], label: "top-1" }, { keys: ["knn_top5"], label: "top-5" }],
    empty: (job) => {
      const every = job && job.spec && job.spec.eval && job.spec.eval.knn && job.spec.eval.knn.every_epochs;
      if (job && job.kind === "pretrain" && !every) return "No kNN data: this job does not run the kNN monitor (eval.knn.every_epochs is 0).";
      if (job && job.kind === "lincls") return "No kNN data: a linear evaluation does not run kNN (a knn job does).";
      return "No kNN evaluation yet.";
    } },
  { id: "lincls", title: "Linear evaluation accuracy (%)", yTitle: "%",
    series: [{ keys: ["lincls_top1"], label: "top-1" }, { keys: ["lincls_top5"], label: "top-5" }],
    empty: (job) => (job && job.kind !== "lincls"
      ? "No linear-evaluation data: only lincls jobs report it."
      : "No linear evaluation yet: it runs at the end of each epoch.") },
];

const SERIES_COLORS = ["#1f6feb", "#d1495b", "#2a9d8f", "#e9a23b"];
const HISTORY_POINTS = 500; // downsample= for the first load
const MAX_POINTS = 4000;    // past this, older live points are thinned to keep drawing cheap
const EVENT_FIELDS = ["job", "kind", "step", "epoch", "ts"]; // every event's own fields, not metrics

class MetricCharts {
  constructor(container, jobId) {
    this.jobId = jobId;
    this.job = null;
    this.loaded = false;
    this.generation = 0; // which load() is the latest: only the latest one applies its result
    this.buffer = [];   // live points that arrived while the history was loading
    this.last = {};     // metric key → last step shown
    this.keys = [];     // metric keys the job has
    this.cards = CHART_DEFS.map((def) => this.makeCard(def));
    container.replaceChildren(...this.cards.map((c) => c.node));
    window.mocodCharts = {}; // id → Chart, for tests and the console
  }

  makeCard(def) {
    const canvas = Util.el("canvas", { id: `chart-${def.id}`, role: "img", "aria-label": def.title });
    const empty = Util.el("p", { class: "chart-empty" }, "Loading…");
    const latest = Util.el("p", { class: "chart-latest", "aria-live": "off" });
    const box = Util.el("div", { class: "chart-box", hidden: true }, canvas);
    const node = Util.el("section", { class: "chart-card", "aria-labelledby": `chart-${def.id}-title` },
      Util.el("h3", { id: `chart-${def.id}-title` }, def.title), empty, box, latest);
    return { def, node, canvas, empty, latest, box, chart: null };
  }

  setJob(job) {
    this.job = job;
    for (const c of this.cards) {
      if (!c.def.titleFor) continue;
      const title = c.def.titleFor(job);
      c.node.querySelector("h3").textContent = title;
      c.canvas.setAttribute("aria-label", title);
    }
    if (this.loaded) for (const c of this.cards) if (!c.chart) c.empty.textContent = c.def.empty(job);
  }

  // The key of each series: the first of its alternatives the job has (or the first one).
  seriesKey(series) {
    return series.keys.find((k) => this.keys.includes(k)) || series.keys[0];
  }

  // (Re)loads every chart's history. Called at start and after a worker (re)start, since a
  // resumed job drops the points after the checkpoint it resumed from.
  // Live events are buffered from the start of the latest load until it ends, then replayed:
  // with two loads in flight, an older one must not show points the newer one then clears.
  async load() {
    const generation = ++this.generation;
    this.loaded = false;
    const body = await Api.metricKeys(this.jobId);
    const keys = (body && body.keys) || [];
    const fetched = {};
    await Promise.all(this.cards.flatMap((c) => c.def.series.map(async (s) => {
      const key = s.keys.find((k) => keys.includes(k)) || s.keys[0];
      fetched[key] = keys.includes(key)
        ? await Api.metricPoints(this.jobId, key, { downsample: HISTORY_POINTS }) : [];
    })));
    if (generation !== this.generation) return; // a newer load() took over
    this.keys = keys;
    this.last = {};
    for (const c of this.cards) {
      c.def.series.forEach((s, i) => {
        const key = this.seriesKey(s);
        const pts = fetched[key] || [];
        if (c.chart) c.chart.data.datasets[i].data = [];
        for (const p of pts) this.addPoint(c, i, key, p.step, p.value);
      });
      this.refresh(c);
    }
    this.loaded = true;
    const buffered = this.buffer;
    this.buffer = [];
    for (const [kind, data] of buffered) this.onEvent(kind, data);
    this.setJob(this.job);
  }

  // Appends the values of one `metric` or `eval` event.
  onEvent(kind, data) {
    if (kind !== "metric" && kind !== "eval") return;
    if (!this.loaded) {
      this.buffer.push([kind, data]);
      if (this.buffer.length > 20000) this.buffer.shift(); // a load that keeps failing
      return;
    }
    const values = {};
    if (kind === "metric") {
      for (const [k, v] of Object.entries(data)) if (!EVENT_FIELDS.includes(k)) values[k] = v;
    } else if (data.eval) {
      for (const f of ["top1", "top5", "loss"]) if (f in data) values[`${data.eval}_${f}`] = data[f];
    }
    for (const k of Object.keys(values)) if (!this.keys.includes(k)) this.keys.push(k);
    for (const c of this.cards) {
      let changed = false;
      c.def.series.forEach((s, i) => {
        const key = s.keys.find((k) => k in values);
        if (key) changed = this.addPoint(c, i, key, data.step, values[key]) || changed;
      });
      if (changed) this.refresh(c);
    }
  }

  // Without an event stream: fetch what is new since the last step shown, per key.
  async poll() {
    if (!this.loaded) return;
    const generation = this.generation;
    const body = await Api.metricKeys(this.jobId);
    this.keys = (body && body.keys) || this.keys;
    for (const c of this.cards) {
      let changed = false;
      for (const [i, s] of c.def.series.entries()) {
        const key = this.seriesKey(s);
        if (!this.keys.includes(key)) continue;
        const since = key in this.last ? this.last[key] : null;
        const pts = await Api.metricPoints(this.jobId, key, { sinceStep: since });
        if (!this.loaded || generation !== this.generation) return; // a reload owns the charts now
        for (const p of pts) changed = this.addPoint(c, i, key, p.step, p.value) || changed;
      }
      if (changed) this.refresh(c);
    }
  }

  // Adds one point in step order unless it is missing or its step is already shown (a poll
  // and the event stream can deliver the same step, and not always in order). Creates the chart
  // at its first point, so that an empty chart is a sentence rather than an empty frame.
  addPoint(card, index, key, step, value) {
    if (value === null || value === undefined || !isFinite(value) || !isFinite(step)) return false;
    if (!card.chart) this.createChart(card);
    const data = card.chart.data.datasets[index].data;
    if (!(key in this.last) || step > this.last[key]) {
      this.last[key] = step;
      data.push({ x: step, y: value });
    } else {
      let lo = 0, hi = data.length; // first index with x >= step
      while (lo < hi) { const mid = (lo + hi) >> 1; if (data[mid].x < step) lo = mid + 1; else hi = mid; }
      if (lo < data.length && data[lo].x === step) return false;
      data.splice(lo, 0, { x: step, y: value });
    }
    if (data.length > MAX_POINTS) thinOlderHalf(data);
    return true;
  }

  createChart(card) {
    card.empty.hidden = true;
    card.box.hidden = false;
    const multi = card.def.series.length > 1;
    // Axis text and grid lines in the page's colours, so that they read in the dark theme too.
    const css = getComputedStyle(document.documentElement);
    Chart.defaults.color = css.getPropertyValue("--muted").trim() || Chart.defaults.color;
    Chart.defaults.borderColor = css.getPropertyValue("--line").trim() || Chart.defaults.borderColor;
    card.chart = new Chart(card.canvas, {
      type: "line",
      data: {
        datasets: card.def.series.map((s, i) => ({
          label: s.label, data: [], borderColor: SERIES_COLORS[i], backgroundColor: SERIES_COLORS[i],
          borderWidth: 1.5, pointHitRadius: 6, tension: 0,
          // Dots while a series is short (an evaluation per epoch; a lone first point), a plain
          // line once it is long.
          pointRadius: (ctx) => (ctx.dataset.data.length <= 40 ? 2.5 : 0),
        })),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: { type: "linear", title: { display: true, text: "step" }, ticks: { precision: 0 } },
          y: { title: { display: true, text: card.def.yTitle } },
        },
        plugins: { legend: { display: multi } },
      },
    });
    window.mocodCharts[card.def.id] = card.chart;
  }

  // Redraws a chart and states its latest values in text (what a screen reader can use).
  refresh(card) {
    if (!card.chart) {
      card.empty.hidden = false;
      card.box.hidden = true;
      card.empty.textContent = card.def.empty(this.job);
      return;
    }
    card.chart.update("none");
    const parts = card.chart.data.datasets
      .filter((d) => d.data.length)
      .map((d) => { const p = d.data[d.data.length - 1]; return `${d.label} ${Util.num(p.y, 4)} at step ${p.x}`; });
    card.latest.textContent = parts.length ? `Latest: ${parts.join(", ")}` : "";
  }

  destroy() {
    for (const c of this.cards) if (c.chart) c.chart.destroy();
    this.cards = [];
    window.mocodCharts = {};
  }
}

// Keeps every second point of the older half of a long series, in place.
function thinOlderHalf(data) {
  const half = Math.floor(data.length / 2);
  const kept = data.slice(0, half).filter((_, i) => i % 2 === 0);
  data.splice(0, half, ...kept);
}
