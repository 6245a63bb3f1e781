// logtail.js — the last lines of a job's log (GET /api/v1/jobs/{id}/logs), following it while
// the job runs: `follow=1` streams new bytes; when that stream ends early (a dropped
// connection, a restart) it reconnects from the byte offset it reached.
"use strict";

const LOG_LINES = 200;        // lines kept on screen
const LOG_TAIL_BYTES = 65536; // a longer log is read from this many bytes before its end

class LogTail {
  constructor(pre, status, jobId, isFinished) {
    this.pre = pre;
    this.status = status;
    this.jobId = jobId;
    this.isFinished = isFinished; // () → true once the job can write no more
    this.offset = 0;
    this.lines = [];
    this.partial = "";
    this.skipFirstLine = false;
    this.stopped = false;
    this.running = false;
    this.ctrl = null;
    this.drawPending = false;
  }

  start() {
    this.running = true;
    this.run()
      .catch((e) => { if (!this.stopped) this.status.textContent = `Log unavailable: ${e.message}`; })
      .finally(() => { this.running = false; });
    return this;
  }

  // Follows again, from the offset reached, after run() ended with the job (a resumed job).
  ensureRunning() {
    if (!this.running && !this.stopped) this.start();
  }

  stop() {
    this.stopped = true;
    if (this.ctrl) this.ctrl.abort();
  }

  async run() {
    let first = true;
    let idle = 0; // reads in a row that brought nothing: a queued job's log can wait for hours
    while (!this.stopped) {
      const before = this.offset;
      const finished = this.isFinished();
      const url = `/api/v1/jobs/${this.jobId}/logs?offset=${this.offset}${finished ? "" : "&follow=1"}`;
      this.ctrl = new AbortController();
      try {
        const res = await Api.fetch(url, { signal: this.ctrl.signal });
        if (res.status === 404) {
          this.status.textContent = "No log yet.";
        } else if (!res.ok) {
          this.status.textContent = `Log unavailable: HTTP ${res.status}`;
        } else {
          const size = Number(res.headers.get("X-Log-Size"));
          if (first && this.offset === 0 && size > LOG_TAIL_BYTES) {
            // Only the end matters: start again near it, dropping the cut first line.
            this.ctrl.abort();
            this.offset = size - LOG_TAIL_BYTES;
            this.skipFirstLine = true;
            first = false;
            continue;
          }
          first = false;
          this.status.textContent = finished ? "" : "Following…";
          await this.consume(res.body);
        }
      } catch (e) {
        if (this.stopped) return;
        if (e.name !== "AbortError") this.status.textContent = `Log connection lost, retrying: ${e.message}`;
      }
      if (this.stopped || finished) break;
      // The stream ended: the job finished (its state event is on its way), the connection
      // dropped, or the job has not started. Read again from the offset reached, sooner when
      // the last read brought something.
      idle = this.offset > before ? 0 : idle + 1;
      await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * 2 ** Math.min(idle, 4))));
    }
    if (!this.stopped) {
      this.status.textContent = this.lines.length || this.partial ? "" : "The log is empty.";
    }
  }

  async consume(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      this.offset += value.byteLength;
      this.append(decoder.decode(value, { stream: true }));
    }
    this.append(decoder.decode());
  }

  append(text) {
    if (!text) return;
    const pieces = (this.partial + text).split("\n");
    this.partial = pieces.pop();
    if (this.skipFirstLine && pieces.length) { pieces.shift(); this.skipFirstLine = false; }
    for (const p of pieces) this.lines.push(p.replace(/\r$/, ""));
    if (this.lines.length > LOG_LINES) this.lines.splice(0, this.lines.length - LOG_LINES);
    this.scheduleDraw();
  }

  // One redraw per frame however many chunks arrive; stays at the bottom if it was there.
  scheduleDraw() {
    if (this.drawPending) return;
    this.drawPending = true;
    requestAnimationFrame(() => {
      this.drawPending = false;
      const pre = this.pre;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
      pre.textContent = this.lines.join("\n") + (this.partial ? `\n${this.partial}` : "");
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    });
  }
}
