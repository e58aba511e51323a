// Running and queue: the running job on top (stage timeline, image i/N, step progress with ETA,
// live preview, cancel), the waiting jobs in run order (drag a handle to reorder, or ↑/↓ on it;
// edit, cancel, select for a bulk cancel), pause with a reason, and the jobs finished lately.

import { ApiError, get, jobPath, post, quiet } from "./api.js";
import {
  $,
  debounce,
  fill,
  h,
  perFrame,
  reasonLine,
  seconds,
  setAttr,
  setText,
  short,
  stagesOf,
  summary,
  when,
} from "./dom.js";

const QUEUE_KINDS = new Set([
  "job_queued",
  "add_to_queue",
  "job_started",
  "job_completed",
  "job_failed",
  "job_cancelled",
  "job_recovered",
  "job_edited",
  "job_moved",
  "jobs_removed",
  "queue_paused",
  "queue_resumed",
]);
const FINISHED = new Set(["job_completed", "job_failed", "job_cancelled"]);
const PREVIEW_EVERY = 250; // ms: at most four preview images a second
const PAGE = 200; // waiting jobs shown at first, and added by "Show more"
const API_LIMIT = 1000; // the most /api/v1/jobs gives in one page

export class Running {
  constructor(app) {
    this.app = app;
    this.job = null; // {id, spec, stages, stage, image, total, done: Set, step, steps, eta}
    this.render = perFrame(() => this.draw());
    this.lastPreview = 0;
    this.previewNumber = 0;
    this.previewTimer = 0;
    $("run-cancel").addEventListener("click", () => this.cancel());
    $("run-preview").addEventListener("load", () => {
      $("run-preview").hidden = false;
    });
  }

  /** From the API: the running job and its trail so far (at start and after a reconnect). */
  async sync() {
    const page = await get("/api/v1/jobs?status=RUNNING&limit=1");
    const job = page.jobs[0];
    if (!job) {
      if (this.job) this.clear();
      return;
    }
    const trail = await get(`${jobPath(job.id)}/events?limit=10000`);
    const started = trail.map((e) => e.kind).lastIndexOf("job_started");
    this.begin(job.id, stagesOf(job.spec), job);
    for (const event of trail.slice(Math.max(0, started))) this.apply(event.kind, event);
    this.render();
  }

  begin(id, stages, job = null) {
    this.job = {
      id,
      spec: job ? job.spec : null,
      stages: stages || [],
      stage: null,
      image: 0,
      total: 0,
      done: new Set(),
      step: 0,
      steps: 0,
      eta: null,
      fraction: 0,
      cancelling: Boolean(job?.cancel_requested),
      backend: "",
    };
    this.previewNumber = 0;
    $("run-preview").hidden = true;
    $("run-preview").removeAttribute("src");
    if (!job) {
      get(jobPath(id))
        .then((found) => {
          if (this.job && this.job.id === id) {
            this.job.spec = found.spec;
            if (!this.job.stages.length) this.job.stages = stagesOf(found.spec);
            this.render();
          }
        })
        .catch(() => {});
    }
  }

  clear() {
    this.job = null;
    clearTimeout(this.previewTimer);
    this.render();
  }

  onEvent(kind, event) {
    if (kind === "job_started") {
      this.begin(event.job_id, event.fields?.stages);
      this.apply(kind, event);
    } else if (this.job && event.job_id === this.job.id) {
      this.apply(kind, event);
      if (FINISHED.has(kind) || kind === "job_recovered") {
        this.finished(kind, event);
        this.clear();
      }
    }
    this.render();
  }

  apply(kind, event) {
    const job = this.job;
    if (!job) return;
    if (kind === "job_started") {
      if (event.fields?.stages) job.stages = event.fields.stages;
      job.backend = event.fields?.backend || "";
    } else if (kind === "stage_started") {
      job.stage = event.stage;
      job.image = event.image_index || 0;
      job.total = event.total || 0;
      job.step = 0;
      job.fraction = 0;
      job.eta = null;
    } else if (kind === "stage_finished") {
      if (event.image_index && event.total && event.image_index >= event.total) job.done.add(event.stage);
      job.fraction = 1;
    }
  }

  onProgress(event) {
    const job = this.job;
    if (!job || event.job_id !== job.id) return;
    const f = event.fields || {};
    job.step = f.step || 0;
    job.steps = f.steps || 0;
    job.eta = f.eta;
    job.fraction = f.fraction || (job.steps ? job.step / job.steps : 0);
    if (event.stage) job.stage = event.stage;
    if (event.image_index) job.image = event.image_index;
    if (event.total) job.total = event.total;
    if (f.preview && f.preview !== this.previewNumber) this.wantPreview(job.id, f.preview);
    this.render();
  }

  wantPreview(id, number) {
    this.previewNumber = number;
    const wait = PREVIEW_EVERY - (Date.now() - this.lastPreview);
    clearTimeout(this.previewTimer);
    this.previewTimer = setTimeout(
      () => {
        if (!this.job || this.job.id !== id) return;
        this.lastPreview = Date.now();
        $("run-preview").src = `${jobPath(id)}/preview?n=${this.previewNumber}`;
      },
      Math.max(0, wait),
    );
  }

  finished(kind, event) {
    const last = $("run-last");
    const id = event.job_id;
    last.hidden = false;
    last.dataset.status = event.status || "";
    if (kind === "job_failed") {
      get(jobPath(id))
        .then((job) => {
          fill(
            last,
            h("span", { text: `Job ${short(id)} failed: ` }),
            h("span", { class: "reason", text: reasonLine(job.error) || event.message }),
            " ",
            h("button", {
              type: "button",
              class: "quiet",
              text: "Show error",
              onclick: () => this.app.gallery.showFailure(job),
            }),
          );
        })
        .catch(() => fill(last, h("span", { text: event.message })));
    } else if (kind === "job_recovered") {
      fill(last, h("span", { text: `Job ${short(id)} went back to the queue: ${event.message}` }));
    } else {
      fill(last, h("span", { text: `Job ${short(id)}: ${event.message}` }));
    }
  }

  async cancel() {
    const job = this.job;
    if (!job) return;
    job.cancelling = true;
    this.render();
    try {
      await post(`${jobPath(job.id)}/cancel`, {});
      this.app.toast(`Cancelling job ${short(job.id)}…`);
    } catch (error) {
      this.app.toast(error.message, error instanceof ApiError && error.status === 409 ? "info" : "error");
    }
  }

  draw() {
    const job = this.job;
    const card = $("run-card");
    $("run-idle").hidden = Boolean(job);
    card.hidden = !job;
    setAttr($("running"), "data-state", job ? "running" : "idle");
    setText($("tab-queue-count"), job ? "●" : "");
    if (!job) return;
    setAttr(card, "data-job-id", job.id);
    setText($("run-id"), short(job.id));
    setText($("run-backend"), job.backend ? `on ${job.backend}` : "");
    setText($("run-prompt"), job.spec ? job.spec.prompt || "(from images)" : "");
    const timeline = $("run-stages");
    if (timeline.dataset.stages !== job.stages.join(",")) {
      timeline.dataset.stages = job.stages.join(",");
      fill(timeline, job.stages.map((s) => h("li", { dataset: { stage: s }, text: s })));
    }
    for (const item of timeline.children) {
      const stage = item.dataset.stage;
      const state = job.done.has(stage) ? "done" : stage === job.stage ? "active" : "pending";
      if (item.dataset.state !== state) {
        item.dataset.state = state;
        item.setAttribute("aria-current", state === "active" ? "step" : "false");
        item.textContent = `${state === "done" ? "✓" : state === "active" ? "▶" : "○"} ${stage}`;
      }
    }
    setText($("run-image"), job.total ? `image ${job.image}/${job.total}` : "starting…");
    const progress = $("run-progress");
    const fraction = Math.round(Math.max(0, Math.min(1, job.fraction || 0)) * 1000) / 1000;
    if (progress.value !== fraction) progress.value = fraction;
    const eta = job.eta ? ` · ETA ${seconds(job.eta)}` : "";
    setText(
      $("run-step"),
      job.steps
        ? `${job.stage || ""} step ${job.step}/${job.steps}${eta}`
        : job.stage
          ? `${job.stage}…`
          : "waiting for the first step…",
    );
    const cancel = $("run-cancel");
    cancel.disabled = job.cancelling;
    setText(cancel.firstChild, job.cancelling ? "Cancelling… " : "Cancel ");
  }
}

export class Queue {
  constructor(app) {
    this.app = app;
    this.jobs = [];
    this.want = PAGE; // how many waiting jobs the list shows (the rest: "Show more")
    this.total = 0;
    this.selected = new Set();
    this.dragging = null;
    this.refresh = debounce(() => this.load(), 120);
    $("q-pause").addEventListener("click", () => this.pause());
    $("q-resume").addEventListener("click", () => this.resume());
    $("q-cancel-all").addEventListener("click", () => this.cancelAll());
    $("q-cancel-selected").addEventListener("click", () => this.cancelSelected());
    $("q-more").addEventListener("click", () => {
      this.want += PAGE;
      this.load();
    });
  }

  onEvent(kind) {
    if (QUEUE_KINDS.has(kind)) this.refresh();
  }

  async load() {
    try {
      const [state, page, recent] = await Promise.all([
        get("/api/v1/queue"),
        this.waiting(this.want),
        get("/api/v1/jobs?history=true&limit=6"),
      ]);
      this.state = state;
      this.total = page.total;
      if (this.dragging) {
        this.pending = page.jobs;
      } else {
        this.jobs = page.jobs;
        this.drawList();
      }
      this.drawState(state, page.total);
      this.drawRecent(recent.jobs);
    } catch (error) {
      if (!quiet(error)) this.app.toast(error.message, "error");
    }
  }

  /** The first `want` waiting jobs in run order, following the API's cursor. */
  async waiting(want) {
    const jobs = [];
    let cursor = null;
    let total = 0;
    do {
      const params = new URLSearchParams({ status: "QUEUED", limit: String(Math.min(API_LIMIT, want - jobs.length)) });
      if (cursor) params.set("cursor", cursor);
      const page = await get(`/api/v1/jobs?${params}`);
      jobs.push(...page.jobs);
      cursor = page.next_cursor;
      total = page.total;
    } while (cursor && jobs.length < want);
    return { jobs, total };
  }

  drawState(state, total) {
    $("q-depth").textContent = total ? `(${total} waiting)` : "";
    const paused = $("q-paused");
    paused.hidden = !state.paused;
    paused.textContent = state.paused ? `Paused: ${state.reason || "paused"}` : "";
    $("q-pause").hidden = state.paused;
    $("q-resume").hidden = !state.paused;
    $("queue").dataset.paused = String(state.paused);
  }

  drawList() {
    const list = $("q-list");
    const ids = new Set(this.jobs.map((j) => j.id));
    for (const id of [...this.selected]) if (!ids.has(id)) this.selected.delete(id);
    // Keyed: a row that did not change stays the same element (focus and all); only what
    // moved is moved.
    const old = new Map([...list.children].map((li) => [li.dataset.jobId, li]));
    const rows = this.jobs.map((job, index) => {
      const sig = JSON.stringify([job.spec, job.note, job.priority]);
      let li = old.get(job.id);
      if (!li || li.dataset.sig !== sig) {
        li = this.row(job);
        li.dataset.sig = sig;
      }
      li.querySelector(".pos").textContent = String(index + 1);
      li.querySelector(".handle").setAttribute(
        "aria-label",
        `Move job ${short(job.id)} (position ${index + 1}); drag, or press ↑ / ↓`,
      );
      return li;
    });
    for (const li of old.values()) if (!rows.includes(li)) li.remove();
    rows.forEach((li, index) => {
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
    });
    $("q-empty").hidden = this.jobs.length > 0;
    const hidden = Math.max(0, this.total - this.jobs.length);
    const more = $("q-more");
    more.hidden = hidden === 0;
    setText(more, `Show ${Math.min(PAGE, hidden)} more (${hidden} not shown)`);
    this.syncSelection();
  }

  row(job) {
    const prompt = job.spec.prompt || `(from ${job.spec.inputs.length} image(s))`;
    const handle = h("button", {
      type: "button",
      class: "handle",
      title: "Drag to reorder (or ↑ / ↓)",
      text: "⠿",
    });
    handle.addEventListener("pointerdown", (event) => this.startDrag(event, job.id));
    handle.addEventListener("keydown", (event) => {
      if (event.key === "ArrowUp" || event.key === "ArrowDown") {
        event.preventDefault();
        this.moveBy(job.id, event.key === "ArrowUp" ? -1 : 1);
      }
    });
    const check = h("input", {
      type: "checkbox",
      "aria-label": `Select job ${short(job.id)}`,
      onchange: (event) => {
        if (event.target.checked) this.selected.add(job.id);
        else this.selected.delete(job.id);
        this.syncSelection();
      },
    });
    check.checked = this.selected.has(job.id);
    return h(
      "li",
      { class: "queue-row", dataset: { jobId: job.id } },
      handle,
      check,
      h("span", { class: "pos" }),
      h(
        "div",
        { class: "what" },
        h("p", { class: "prompt-text clamp", text: prompt }),
        h("p", { class: "muted small", text: `${short(job.id)} · ${summary(job.spec)}` }),
        job.note ? h("p", { class: "note small", text: job.note }) : null,
      ),
      h(
        "div",
        { class: "row-actions" },
        h("button", {
          type: "button",
          class: "quiet",
          text: "Edit",
          "aria-label": `Edit job ${short(job.id)}`,
          onclick: () => this.app.compose.edit(job),
        }),
        h("button", {
          type: "button",
          class: "quiet danger",
          text: "Cancel",
          "aria-label": `Cancel job ${short(job.id)}`,
          onclick: () => this.cancel(job.id),
        }),
      ),
    );
  }

  drawRecent(jobs) {
    fill(
      $("q-recent"),
      jobs.map((job) =>
        h(
          "li",
          { class: "recent-row", dataset: { jobId: job.id, status: job.status } },
          h("span", { class: `status ${job.status.toLowerCase()}`, text: job.status.toLowerCase() }),
          h(
            "div",
            { class: "what" },
            h("p", { class: "prompt-text clamp", text: job.spec.prompt || "(from images)" }),
            job.error ? h("p", { class: "reason small", text: reasonLine(job.error) }) : null,
            h("p", { class: "muted small", text: `${short(job.id)} · ${when(job.finished_at)}` }),
          ),
          job.status === "COMPLETED"
            ? null
            : h("button", {
                type: "button",
                class: "quiet",
                text: "Retry",
                "aria-label": `Retry job ${short(job.id)}`,
                onclick: () => this.app.gallery.requeue(job),
              }),
        ),
      ),
    );
  }

  syncSelection() {
    const count = this.selected.size;
    const button = $("q-cancel-selected");
    button.disabled = count === 0;
    button.textContent = count ? `Cancel selected (${count})` : "Cancel selected";
  }

  // -- actions ----------------------------------------------------------------------------------

  async cancel(id) {
    try {
      await post(`${jobPath(id)}/cancel`, {});
      this.app.toast(`Job ${short(id)} cancelled.`);
    } catch (error) {
      this.app.toast(error.message, "error");
    }
    this.refresh();
  }

  async cancelSelected() {
    const ids = [...this.selected];
    let done = 0;
    for (const id of ids) {
      try {
        await post(`${jobPath(id)}/cancel`, {});
        done += 1;
      } catch (error) {
        this.app.toast(error.message, "error");
      }
    }
    this.selected.clear();
    this.app.toast(`Cancelled ${done} job${done === 1 ? "" : "s"}.`);
    this.refresh();
  }

  async cancelAll() {
    // One click used to end thousands of jobs: ask first, with the count.
    const count = this.total;
    if (!count) {
      this.app.toast("Nothing waits.");
      return;
    }
    const asked = `Cancel all ${count} waiting job${count === 1 ? "" : "s"}? This cannot be undone.`;
    if (!window.confirm(asked)) return;
    try {
      const answer = await post("/api/v1/jobs/cancel-pending", {});
      this.app.toast(`Cancelled ${answer.count} waiting job${answer.count === 1 ? "" : "s"}.`);
    } catch (error) {
      this.app.toast(error.message, "error");
    }
    this.refresh();
  }

  async pause() {
    const reason = $("q-reason").value.trim() || "paused by the user";
    try {
      const state = await post("/api/v1/queue/pause", { reason });
      this.drawState(state, state.depth);
      this.app.toast("The queue is paused: the running job finishes, nothing new starts.");
    } catch (error) {
      this.app.toast(error.message, "error");
    }
  }

  async resume() {
    try {
      const state = await post("/api/v1/queue/resume", {});
      this.drawState(state, state.depth);
      this.app.toast("The queue runs again.");
    } catch (error) {
      this.app.toast(error.message, "error");
    }
  }

  async moveTo(id, position) {
    try {
      await post(`${jobPath(id)}/move`, { position });
    } catch (error) {
      this.app.toast(error.message, "error");
    }
    await this.load();
  }

  async moveBy(id, delta) {
    const index = this.jobs.findIndex((j) => j.id === id);
    const target = index + delta;
    // The last row shown moves down past the list's end too: the list grows to keep it shown.
    if (index < 0 || target < 0 || target >= Math.max(this.total, this.jobs.length)) return;
    this.want = Math.max(this.want, target + 1);
    await this.moveTo(id, target);
    const handle = $("q-list").querySelector(`li[data-job-id="${CSS.escape(id)}"] .handle`);
    if (handle) handle.focus();
  }

  // -- drag and drop (pointer events: mouse, pen and touch alike) -------------------------------

  startDrag(event, id) {
    if (event.button !== 0) return;
    const list = $("q-list");
    const row = list.querySelector(`li[data-job-id="${CSS.escape(id)}"]`);
    if (!row) return;
    event.preventDefault();
    // Followed on the window: moving the row in the list would drop a pointer capture.
    const from = [...list.children].indexOf(row);
    this.dragging = { id, row, from, startY: event.clientY };
    row.classList.add("dragging");
    list.classList.add("sorting");
    const move = (e) => {
      const drag = this.dragging;
      if (!drag) return;
      drag.row.style.transform = `translateY(${e.clientY - drag.startY}px)`;
      const others = [...list.children].filter((r) => r !== drag.row);
      let before = null;
      for (const other of others) {
        const box = other.getBoundingClientRect();
        if (e.clientY < box.top + box.height / 2) {
          before = other;
          break;
        }
      }
      const oldTop = drag.row.getBoundingClientRect().top;
      if (before !== drag.row.nextElementSibling) {
        list.insertBefore(drag.row, before);
        const shift = drag.row.getBoundingClientRect().top - oldTop;
        drag.startY += shift;
        drag.row.style.transform = `translateY(${e.clientY - drag.startY}px)`;
      }
    };
    const end = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", end);
      window.removeEventListener("pointercancel", end);
      const drag = this.dragging;
      this.dragging = null;
      drag.row.style.transform = "";
      drag.row.classList.remove("dragging");
      list.classList.remove("sorting");
      const to = [...list.children].indexOf(drag.row);
      if (to !== drag.from) {
        this.app.toast(`Job ${short(drag.id)} moved to position ${to + 1}.`);
        this.moveTo(drag.id, to);
      } else if (this.pending) {
        this.jobs = this.pending;
        this.pending = null;
        this.drawList();
      }
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", end);
    window.addEventListener("pointercancel", end);
  }
}
