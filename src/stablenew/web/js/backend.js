// Backend and log: the backend's state (and every backend of the pool), its models, restart,
// its last output lines; the live lifecycle log, filtered by job.

import { ApiError, get, jobPath, post, quiet } from "./api.js";
import { $, debounce, fill, h, short, throttle, when } from "./dom.js";

const KEEP = 5000; // events kept in memory
const SHOWN = 500; // rows in the list
const DRAW_EVERY = 150; // ms: a burst of events is drawn together (the log is for reading)

export class Backend {
  constructor(app) {
    this.app = app;
    this.refresh = debounce(() => this.load(), 200);
    $("b-restart").addEventListener("click", () => this.restart());
    $("b-tail-refresh").addEventListener("click", () => this.tail());
    $("b-models-box").addEventListener("toggle", (event) => {
      if (event.target.open) this.models();
    });
  }

  onEvent(kind) {
    if (kind.startsWith("backend_") || kind === "recovery") this.refresh();
    if (kind === "backend_ready") this.app.compose.backendReady();
  }

  async load() {
    try {
      const [state, pool] = await Promise.all([get("/api/v1/backend"), get("/api/v1/backends")]);
      this.draw(state, pool);
      if (this.app.visible("backend")) {
        this.tail();
        if (!this.modelsShown) this.models();
      }
    } catch (error) {
      if (!quiet(error)) this.app.toast(error.message, "error");
    }
  }

  draw(state, pool) {
    const pill = $("backend-pill");
    pill.dataset.state = state.state.toLowerCase();
    pill.textContent = `backend ${state.state.toLowerCase()}`;
    pill.title = state.kind || state.url || "the backend";
    const facts = [
      ["State", state.state],
      ["What", state.kind || "—"],
      ["Address", state.url || "—"],
      ["Managed", state.managed ? "started and watched by StableNew" : "attached (started elsewhere)"],
      ["Restarts", String(state.restarts)],
      ["Crash-loop breaker", state.breaker],
    ];
    fill($("b-state"), facts.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
    $("b-restart").disabled = !state.managed || state.state === "RESTARTING" || state.state === "STARTING";
    fill(
      $("b-pool").tBodies[0],
      pool.map((b) =>
        h(
          "tr",
          {},
          h("th", { scope: "row", text: b.name + (b.labels.length ? ` (${b.labels.join(", ")})` : "") }),
          h("td", { text: b.held ? `${b.state} · held: ${b.held}` : b.state }),
          h("td", { text: b.loaded_model || "—" }),
          h("td", { text: b.current_job ? short(b.current_job) : "—" }),
          h("td", { text: String(b.restarts) }),
        ),
      ),
    );
  }

  async models() {
    try {
      const models = await get("/api/v1/backend/models");
      this.modelsShown = true;
      $("b-models-count").textContent = String(models.length);
      fill(
        $("b-models"),
        models.map((m) => h("li", { text: m.title || m.model_name })),
      );
    } catch (error) {
      fill($("b-models"), h("li", { class: "muted", text: error.message }));
    }
  }

  async tail() {
    try {
      const tail = await get("/api/v1/backend/tail?lines=200");
      const text = [tail.stdout, tail.stderr].filter(Boolean).join("\n").trim();
      $("b-tail").textContent = text || "(no output yet)";
      $("b-tail").scrollTop = $("b-tail").scrollHeight;
    } catch (error) {
      $("b-tail").textContent = error.message;
    }
  }

  async restart() {
    $("b-restart").disabled = true;
    this.app.toast("Restarting the backend…");
    try {
      const state = await post("/api/v1/backend/restart", {});
      this.app.toast(`The backend is ${state.state.toLowerCase()}.`);
    } catch (error) {
      this.app.toast(error.message, "error");
    }
    this.load();
  }
}

export class Log {
  constructor(app) {
    this.app = app;
    this.events = []; // every lifecycle event this page has, oldest first, each seq once
    this.seqs = new Set();
    this.filter = "";
    this.trail = null; // the filtered job's whole trail, read from the API
    this.drawn = 0; // how many of this.events the list shows (unfiltered, appended live)
    this.render = throttle(() => this.draw(), DRAW_EVERY);
    this.setFilter = debounce((value) => this.applyFilter(value), 250);
    $("l-job").addEventListener("input", (event) => this.setFilter(event.target.value.trim()));
    $("l-all").addEventListener("click", () => {
      $("l-job").value = "";
      this.setFilter.now("");
    });
    $("l-list").addEventListener("scroll", () => {
      // Scrolling up pauses following; back at the end, it follows again.
      const list = $("l-list");
      if (!list.clientHeight) return;
      $("l-follow").checked = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
    });
    $("l-list").addEventListener("click", (event) => {
      const job = event.target.closest("[data-filter-job]");
      if (job) {
        $("l-job").value = job.dataset.filterJob;
        this.setFilter.now(job.dataset.filterJob);
      }
    });
  }

  load(events) {
    for (const event of events) this.add(event);
  }

  add(event) {
    if (event.seq === null || event.seq === undefined || this.seqs.has(event.seq)) return;
    this.seqs.add(event.seq);
    this.events.push(event);
    if (this.events.length > KEEP) {
      const gone = this.events.splice(0, this.events.length - KEEP);
      for (const old of gone) this.seqs.delete(old.seq);
      this.drawn = Math.max(0, this.drawn - gone.length);
    }
    if (this.trail && this.matches(event) && !this.trail.some((e) => e.seq === event.seq)) {
      this.trail.push(event);
    }
    this.render();
  }

  matches(event) {
    return !this.filter || (event.job_id || "").startsWith(this.filter);
  }

  async applyFilter(value) {
    this.filter = value.toLowerCase();
    this.trail = null;
    $("l-list").replaceChildren();
    this.drawn = 0;
    if (this.filter.length >= 4) {
      try {
        const trail = await get(`${jobPath(this.filter)}/events?limit=10000`);
        if (this.filter !== value.toLowerCase()) return;
        const seen = new Set(trail.map((e) => e.seq));
        this.trail = [...trail, ...this.events.filter((e) => this.matches(e) && !seen.has(e.seq))];
        this.trail.sort((a, b) => a.seq - b.seq);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          this.trail = [];
        }
      }
    }
    this.render();
  }

  row(event) {
    return h(
      "li",
      { dataset: { seq: String(event.seq), kind: event.kind, jobId: event.job_id || "" } },
      h("time", { datetime: event.ts, text: when(event.ts) }),
      h("span", { class: "kind", text: event.kind }),
      event.job_id
        ? h("button", {
            type: "button",
            class: "job-link",
            dataset: { filterJob: event.job_id },
            "aria-label": `Show only job ${short(event.job_id)}`,
            text: short(event.job_id),
          })
        : h("span", { class: "job-link none", text: "—" }),
      h("span", { class: "msg", text: event.message }),
    );
  }

  draw() {
    if (!this.app.visible("backend")) return; // drawn when shown (show() asks for it)
    const list = $("l-list");
    const follow = $("l-follow").checked;
    const source = this.trail || (this.filter ? this.events.filter((e) => this.matches(e)) : this.events);
    if (this.trail || this.filter) {
      // A filtered view is small: draw it whole.
      const rows = source.slice(-SHOWN).map((e) => this.row(e));
      list.replaceChildren(...rows);
    } else {
      const fresh = this.events.slice(Math.max(this.drawn, this.events.length - SHOWN));
      this.drawn = this.events.length;
      if (fresh.length) {
        list.append(...fresh.map((e) => this.row(e)));
        let extra = list.childElementCount - SHOWN;
        while (extra-- > 0) list.firstElementChild.remove();
      }
    }
    if (follow) list.scrollTop = list.scrollHeight;
  }
}
