// Gallery and history: finished jobs newest first (pages of the API's cursor, loaded as the
// grid scrolls), filtered by status and searched; a lightbox with the full image, its stage
// siblings, infotext and download; load into compose, reuse seed, re-queue; a failed job's
// reason on its card and its error envelope and artifacts one click away.

import { get, getBlob, jobPath, post, quiet } from "./api.js";
import {
  $,
  debounce,
  fileUrl,
  fill,
  h,
  readAsDataUrl,
  reasonLine,
  relative,
  short,
  stagesOf,
  thumbUrl,
  when,
} from "./dom.js";

const PAGE = 40;
const FINISHED = new Set(["job_completed", "job_failed", "job_cancelled"]);
const STAGE_ORDER = ["txt2img", "img2img", "adetailer", "upscale"];

/** The files of image `index` (0-based) of a job, one per stage it went through. */
function siblings(job, index) {
  const result = job.result || {};
  const stages = result.stages || {};
  const names = Object.keys(stages).sort((a, b) => STAGE_ORDER.indexOf(a) - STAGE_ORDER.indexOf(b));
  const out = [];
  const furthest = result.images?.[index];
  const prefix = furthest ? relative(furthest, result.run_dir)?.split("_")[0] : null;
  for (const stage of names) {
    const files = stages[stage] || [];
    let path = files[index];
    if (prefix) {
      const match = files.find((f) => relative(f, result.run_dir)?.startsWith(`${prefix}_`));
      if (match) path = match;
    }
    const name = path ? relative(path, result.run_dir) : null;
    if (name) out.push({ stage, name });
  }
  return out;
}

export class Gallery {
  constructor(app) {
    this.app = app;
    this.jobs = new Map();
    this.cursor = null;
    this.loading = false;
    this.generation = 0;
    this.total = 0;
    this.manifests = new Map();
    this.box = null; // the lightbox: {job, index, stage}
    this.reloadSoon = debounce(() => this.reload(), 300);
    $("g-status").addEventListener("change", () => this.reload());
    $("g-search").addEventListener("input", () => this.reloadSoon());
    $("g-more").addEventListener("click", () => this.more());
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting) && this.app.visible("gallery")) this.more();
      },
      { rootMargin: "600px" },
    );
    this.observer.observe($("g-sentinel"));
    this.bindLightbox();
    this.bindFailure();
  }

  async init() {
    await this.reload();
  }

  query() {
    const params = new URLSearchParams({ history: "true", limit: String(PAGE) });
    const status = $("g-status").value;
    const search = $("g-search").value.trim();
    if (status) params.append("status", status);
    if (search) params.set("search", search);
    if (this.cursor) params.set("cursor", this.cursor);
    return `/api/v1/jobs?${params}`;
  }

  async reload() {
    this.generation += 1;
    this.cursor = null;
    this.done = false;
    this.loading = false;
    this.jobs.clear();
    $("g-grid").replaceChildren();
    await this.more();
  }

  async more() {
    if (this.loading || this.done) return;
    this.loading = true;
    const generation = this.generation;
    try {
      const page = await get(this.query());
      if (generation !== this.generation) return;
      const cards = [];
      for (const job of page.jobs) {
        if (this.jobs.has(job.id)) continue;
        this.jobs.set(job.id, job);
        cards.push(this.card(job));
      }
      $("g-grid").append(...cards);
      this.cursor = page.next_cursor;
      this.done = !page.next_cursor;
      this.total = page.total;
      this.count();
      $("g-more").hidden = this.done;
    } catch (error) {
      if (!quiet(error)) this.app.toast(error.message, "error");
    } finally {
      if (generation === this.generation) this.loading = false;
    }
  }

  count() {
    $("g-count").textContent = `${this.total} job${this.total === 1 ? "" : "s"}`;
  }

  matches(job) {
    const status = $("g-status").value;
    const search = $("g-search").value.trim().toLowerCase();
    if (status && job.status !== status) return false;
    if (search && !(`${job.id} ${job.spec.prompt} ${job.spec.negative_prompt}`.toLowerCase().includes(search))) {
      return false;
    }
    return true;
  }

  onEvent(kind, event) {
    if (FINISHED.has(kind) && event.job_id) this.arrived(event.job_id);
  }

  async arrived(id) {
    let job;
    try {
      job = await get(jobPath(id));
    } catch {
      return;
    }
    if (!this.matches(job)) return;
    const old = $("g-grid").querySelector(`li[data-job-id="${CSS.escape(id)}"]`);
    const card = this.card(job);
    if (!this.jobs.has(id)) this.total += 1;
    this.jobs.set(id, job);
    if (old) old.replaceWith(card);
    else $("g-grid").prepend(card);
    this.count();
  }

  card(job) {
    const images = job.result?.images || [];
    const first = images.length ? relative(images[0], job.result.run_dir) : null;
    const prompt = job.spec.prompt || `(from ${job.spec.inputs.length} image(s))`;
    const status = job.status.toLowerCase();
    const thumb = h(
      "button",
      {
        type: "button",
        class: "thumb",
        "aria-label": `Open job ${short(job.id)}${images.length ? "" : " (no image)"}: ${prompt}`,
        onclick: () => (images.length ? this.open(job, 0) : this.showFailure(job)),
      },
      first
        ? h("img", {
            src: thumbUrl(job.id, first),
            alt: "",
            loading: "lazy",
            decoding: "async",
            width: 256,
            height: 256,
          })
        : h("span", { class: "no-image", text: status }),
      images.length > 1 ? h("span", { class: "badge", text: `×${images.length}` }) : null,
    );
    const failed = job.status === "FAILED";
    const actions = [
      h("button", {
        type: "button",
        class: "quiet",
        text: "Load into compose",
        "aria-label": `Load job ${short(job.id)} into compose`,
        onclick: () => this.load(job),
      }),
      h("button", {
        type: "button",
        class: "quiet",
        text: job.status === "COMPLETED" ? "Re-queue" : "Retry",
        "aria-label": `${job.status === "COMPLETED" ? "Re-queue" : "Retry"} job ${short(job.id)}`,
        onclick: () => this.requeue(job),
      }),
    ];
    if (job.status !== "COMPLETED") {
      actions.push(
        h("button", {
          type: "button",
          class: "quiet",
          text: failed ? "Why it failed" : "Details",
          "aria-label": `${failed ? "Why job" : "Details of job"} ${short(job.id)}${failed ? " failed" : ""}`,
          onclick: () => this.showFailure(job),
        }),
      );
    }
    return h(
      "li",
      { class: "job-card", dataset: { jobId: job.id, status: job.status } },
      thumb,
      h(
        "div",
        { class: "info" },
        h("p", { class: "prompt-text clamp", text: prompt }),
        failed ? h("p", { class: "reason", title: reasonLine(job.error), text: reasonLine(job.error) }) : null,
        h(
          "p",
          { class: "muted small" },
          h("span", { class: `status ${status}`, text: status }),
          ` ${short(job.id)} · ${images.length} image${images.length === 1 ? "" : "s"} · ${when(job.finished_at)}`,
        ),
        h("div", { class: "card-actions" }, actions),
      ),
    );
  }

  // -- actions ----------------------------------------------------------------------------------

  /** Compose from image `index` of a job: the one-image job that made it (its own seed, its
   * own input image), read from the PNG as "Open files…" and the desktop's "Use settings" do;
   * a job without images (or `index` null) gives its spec. ⚄ in compose re-rolls the seed. */
  async load(job, index = 0) {
    this.close();
    const path = index === null ? null : job.result?.images?.[index];
    const name = path ? relative(path, job.result.run_dir) : null;
    if (!name) {
      this.app.compose.load(job.spec, { note: `Job ${short(job.id)} loaded into compose.` });
      return;
    }
    try {
      const blob = await getBlob(fileUrl(job.id, name), `${name} of job ${short(job.id)}`);
      const data = await readAsDataUrl(blob);
      const imported = await post("/api/v1/import/png", { name: name.split("/").pop(), data });
      const count = job.result.images.length;
      this.app.compose.load(imported.spec, {
        note: `Image ${index + 1}/${count} of job ${short(job.id)} loaded into compose (seed ${imported.spec.seed}; ⚄ for a new one).`,
      });
      this.app.compose.showMessages([], imported.warnings || []);
    } catch (error) {
      if (!quiet(error)) this.app.toast(error.message, "error");
    }
  }

  async requeue(job) {
    try {
      const answer =
        job.status === "COMPLETED"
          ? await post("/api/v1/jobs", { spec: job.spec })
          : await post(`${jobPath(job.id)}/retry`, {});
      this.app.toast(`Queued again as ${answer.ids.map(short).join(", ")}.`);
      this.app.queue.refresh();
    } catch (error) {
      this.app.toast(error.message, "error");
    }
  }

  close() {
    if ($("lightbox").open) $("lightbox").close();
    if ($("failure").open) $("failure").close();
  }

  // -- lightbox ---------------------------------------------------------------------------------

  bindLightbox() {
    const dialog = $("lightbox");
    $("lb-close").addEventListener("click", () => dialog.close());
    $("lb-prev").addEventListener("click", () => this.step(-1));
    $("lb-next").addEventListener("click", () => this.step(1));
    document.addEventListener("keydown", (event) => {
      if (!dialog.open || event.target.matches("input, textarea, select")) return;
      if (event.key === "ArrowLeft") this.step(-1);
      if (event.key === "ArrowRight") this.step(1);
    });
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close(); // the backdrop
    });
    $("lb-load").addEventListener("click", () => this.box && this.load(this.box.job, this.box.index));
    $("lb-requeue").addEventListener("click", () => this.box && this.requeue(this.box.job));
    $("lb-seed").addEventListener("click", () => {
      if (!this.box) return;
      const seed = this.box.seed ?? this.box.job.result.seeds?.[this.box.index];
      if (seed === undefined || seed === null) return;
      this.close();
      this.app.compose.setSeed(seed);
    });
    dialog.addEventListener("close", () => {
      this.box = null;
      $("lb-img").removeAttribute("src");
    });
  }

  open(job, index, stage = null) {
    const count = job.result.images.length;
    const files = siblings(job, index);
    const chosen = files.find((f) => f.stage === stage) || files[files.length - 1];
    this.box = { job, index, stage: chosen?.stage, seed: job.result.seeds?.[index] };
    $("lb-title").textContent = `Job ${short(job.id)}`;
    $("lb-pos").textContent = `image ${index + 1}/${count}`;
    $("lb-prev").disabled = index === 0;
    $("lb-next").disabled = index >= count - 1;
    $("lb-prompt").textContent = job.spec.prompt;
    const hadFocus = $("lb-stages").contains(document.activeElement);
    fill(
      $("lb-stages"),
      files.map((f) =>
        h("button", {
          type: "button",
          text: f.stage,
          "aria-pressed": String(f.stage === chosen?.stage),
          onclick: () => this.open(job, index, f.stage),
        }),
      ),
    );
    if (hadFocus) $("lb-stages").querySelector("[aria-pressed=true]")?.focus();
    const img = $("lb-img");
    if (chosen) {
      img.src = fileUrl(job.id, chosen.name);
      img.alt = `Image ${index + 1} of ${count} after ${chosen.stage}, job ${short(job.id)}`;
      const download = $("lb-download");
      download.href = fileUrl(job.id, chosen.name);
      download.setAttribute("download", chosen.name.split("/").pop());
    }
    fill($("lb-infotext"), "…");
    fill($("lb-facts"));
    this.manifest(job, index).then((manifest) => this.describe(job, index, chosen, manifest));
    if (!$("lightbox").open) $("lightbox").showModal();
  }

  step(delta) {
    if (!this.box) return;
    const next = this.box.index + delta;
    if (next < 0 || next >= this.box.job.result.images.length) return;
    this.open(this.box.job, next, this.box.stage);
  }

  async manifest(job, index) {
    const path = job.result.manifests?.[index];
    const name = path ? relative(path, job.result.run_dir) : null;
    if (!name) return null;
    const key = `${job.id}/${name}`;
    if (!this.manifests.has(key)) {
      this.manifests.set(key, get(fileUrl(job.id, name)).catch(() => null));
    }
    return this.manifests.get(key);
  }

  describe(job, index, chosen, manifest) {
    if (!this.box || this.box.job.id !== job.id || this.box.index !== index) return;
    const record = manifest?.stages?.find((s) => s.stage === chosen?.stage) || null;
    $("lb-infotext").textContent = record?.infotext || "(no infotext recorded)";
    const seed = record?.seed ?? manifest?.seed ?? job.result.seeds?.[index];
    this.box.seed = seed;
    const facts = [
      ["Seed", seed],
      ["Size", record ? `${record.size[0]}×${record.size[1]}` : ""],
      ["Model", manifest?.model || job.spec.model || ""],
      ["Stage took", record ? `${record.duration_s} s` : ""],
      ["Stages", stagesOf(job.spec).join(" → ")],
      ["Finished", when(job.finished_at)],
    ];
    fill(
      $("lb-facts"),
      facts.filter(([, v]) => v !== "" && v !== undefined && v !== null).flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: String(v) })]),
    );
  }

  // -- a failure's details ------------------------------------------------------------------

  bindFailure() {
    const dialog = $("failure");
    $("f-close").addEventListener("click", () => dialog.close());
    $("f-retry").addEventListener("click", () => {
      if (this.failed) this.requeue(this.failed);
      dialog.close();
    });
    $("f-load").addEventListener("click", () => this.failed && this.load(this.failed, null)); // the job's spec
    dialog.querySelector("details").addEventListener("toggle", (event) => {
      if (event.target.open && this.failed) this.listFiles(this.failed);
    });
  }

  showFailure(job) {
    this.failed = job;
    const error = job.error;
    $("f-title").textContent =
      job.status === "FAILED" ? `Why job ${short(job.id)} failed` : `Job ${short(job.id)}: ${job.status.toLowerCase()}`;
    $("f-line").textContent = error ? reasonLine(error) : `No error: the job is ${job.status.toLowerCase()}.`;
    fill(
      $("f-causes"),
      (error?.causes || []).map((c) =>
        h(
          "li",
          {},
          h("strong", { text: c.type }),
          ` ${[c.stage, c.endpoint, c.status ? `HTTP ${c.status}` : ""].filter(Boolean).join(" ")}: `,
          h("span", { text: c.message }),
        ),
      ),
    );
    const artifacts = error?.artifacts || [];
    fill(
      $("f-artifacts"),
      artifacts.length
        ? artifacts.map((path) => {
            const name = relative(path, job.result?.run_dir);
            return h(
              "li",
              {},
              name ? h("a", { href: fileUrl(job.id, name), target: "_blank", rel: "noopener", text: name }) : h("code", { text: path }),
            );
          })
        : [h("li", { class: "muted", text: "No failure artifacts." })],
    );
    fill($("f-files"));
    $("f-json").textContent = JSON.stringify(error || {}, null, 2);
    $("f-retry").hidden = job.status === "COMPLETED" || job.status === "QUEUED" || job.status === "RUNNING";
    const dialog = $("failure");
    if (dialog.querySelector("details").open) dialog.querySelector("details").open = false;
    if (!dialog.open) dialog.showModal();
  }

  async listFiles(job) {
    try {
      const names = await get(`${jobPath(job.id)}/files`);
      fill(
        $("f-files"),
        names.length
          ? names.map((n) => h("li", {}, h("a", { href: fileUrl(job.id, n), target: "_blank", rel: "noopener", text: n })))
          : [h("li", { class: "muted", text: "No files." })],
      );
    } catch (error) {
      fill($("f-files"), h("li", { class: "muted", text: error.message }));
    }
  }
}
