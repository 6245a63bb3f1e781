// submit.js — the submit form: a job spec (YAML or JSON, docs/job-spec.md) plus the daemon's
// name and priority keys, POSTed to /api/v1/jobs. A 400 shows the server's message and the
// field it names; a 201 opens the new job's page.
"use strict";

// A small example: MoCo v2 pretraining of a ResNet-18 on CIFAR-sized images, on the CPU. mocod
// takes only absolute image folders under its data roots, which the API does not list, so the
// paths are placeholders to edit (a refused path's error message names the data roots).
const EXAMPLE_SPEC = `# MoCo v2 pretraining, ResNet-18 with the CIFAR stem, on the CPU.
# Edit data.train / data.val: absolute ImageFolder roots (root/<class>/<images>) under the
# daemon's data roots. Every key and its default: docs/job-spec.md.
kind: pretrain
method: moco_v2
model: {arch: resnet18, cifar_stem: true, dim: 128}
moco: {k: 512, m: 0.99}
data:
  train: /data/cifar10-small/train
  val: /data/cifar10-small/val
  image_size: 32
  val_resize: 32
optim: {lr: 0.06, weight_decay: 5.0e-4, batch_size: 64, epochs: 2}
eval:
  knn: {every_epochs: 1}
resources: {gpus: 0}
log: {print_every: 5}
`;

const SubmitForm = {
  mount(box, { focus = false } = {}) {
    const { el } = Util;
    const spec = el("textarea", { id: "spec-text", name: "spec", rows: 18, spellcheck: "false", wrap: "off",
      autocomplete: "off", "aria-describedby": "spec-help submit-error" });
    spec.value = EXAMPLE_SPEC;
    const name = el("input", { id: "spec-name", name: "name", type: "text", placeholder: "from the spec", autocomplete: "off" });
    const priority = el("input", { id: "spec-priority", name: "priority", type: "number", step: 1, placeholder: "0", inputmode: "numeric" });
    const file = el("input", { id: "spec-file", type: "file", accept: ".yaml,.yml,.json,text/yaml,application/json" });
    const error = el("div", { id: "submit-error", class: "error", role: "alert", hidden: true });
    const send = el("button", { type: "submit", id: "submit-button", class: "btn btn-primary" }, "Submit");
    const form = el("form", { id: "submit-form", novalidate: true },
      el("div", { class: "form-row" },
        el("div", { class: "field" }, el("label", { for: "spec-name" }, "Name"), name),
        el("div", { class: "field field-small" }, el("label", { for: "spec-priority" }, "Priority"), priority),
        el("div", { class: "field" }, el("label", { for: "spec-file" }, "Load a spec file"), file)),
      el("div", { class: "field" },
        el("label", { for: "spec-text" }, "Job spec (YAML or JSON)"),
        el("p", { id: "spec-help", class: "muted" },
          "Keys as in docs/job-spec.md. Name and priority, when filled in, replace the spec's own."),
        spec),
      error,
      el("div", { class: "form-actions" }, send,
        el("button", { type: "button", class: "btn", onclick: () => { spec.value = EXAMPLE_SPEC; } }, "Reset to example")));
    box.replaceChildren(el("h2", { id: "submit-title" }, "Submit a job"), form);

    file.addEventListener("change", async () => {
      if (file.files.length) spec.value = await file.files[0].text();
    });

    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      error.hidden = true;
      for (const input of [spec, name, priority]) input.removeAttribute("aria-invalid");
      if (priority.value !== "" && !Number.isInteger(Number(priority.value))) {
        SubmitForm.showError(error, priority, "Priority must be a whole number.");
        return;
      }
      const { body, type } = SubmitForm.buildBody(spec.value, name.value.trim(), priority.value);
      send.disabled = true;
      try {
        const job = await Api.json("/api/v1/jobs", { method: "POST", body, headers: { "Content-Type": type } });
        location.hash = `#/jobs/${job.id}`;
      } catch (err) {
        const target = err.field === "name" ? name : err.field === "priority" ? priority : spec;
        const what = err.status === 400 ? "The spec was refused" : `Submitting failed (HTTP ${err.status || "error"})`;
        SubmitForm.showError(error, target, `${what}: ${err.message}`, err.field);
      } finally {
        send.disabled = false;
      }
    });

    if (focus) {
      box.scrollIntoView({ block: "start" });
      spec.focus();
    }
  },

  showError(box, input, message, field) {
    box.replaceChildren(
      Util.el("p", {}, message),
      field ? Util.el("p", {}, "Field: ", Util.el("code", { class: "error-field" }, field)) : null);
    box.hidden = false;
    input.setAttribute("aria-invalid", "true");
  },

  // The request body and its Content-Type. A JSON object gets name/priority as keys; YAML gets
  // its top-level `name:` / `priority:` lines replaced (block-style YAML keeps top-level keys at
  // column 0, and the page has no YAML parser to do better).
  buildBody(text, name, priority) {
    const trimmed = text.trim();
    if (trimmed.startsWith("{")) {
      let obj = null;
      try { obj = JSON.parse(trimmed); } catch (_) { obj = null; }
      if (obj && typeof obj === "object" && !Array.isArray(obj)) {
        if (name) obj.name = name;
        if (priority !== "") obj.priority = Number(priority);
        return { body: JSON.stringify(obj), type: "application/json" };
      }
    }
    let yaml = text.replace(/\s*$/, "\n");
    if (name) yaml = yaml.replace(/^name:.*\n/gm, "") + `name: ${JSON.stringify(name)}\n`;
    if (priority !== "") yaml = yaml.replace(/^priority:.*\n/gm, "") + `priority: ${Number(priority)}\n`;
    return { body: yaml, type: "application/yaml" };
  },
};
