// Compose: the form is a JobSpec. Every control names its field (data-path); what the form does
// not show (extensions, metadata, a pass's finer settings) is kept from the spec it started
// from. As the user types, the API checks the body it would submit (POST /api/v1/jobs/check)
// and its messages are shown as it words them.

import { ApiError, get, jobPath, post, put } from "./api.js";
import {
  $,
  debounce,
  FileError,
  fill,
  h,
  readAsDataUrl,
  readAsJson,
  readAsText,
  short,
} from "./dom.js";

const NULLABLE = new Set(["model", "vae", "img2img.steps", "img2img.cfg_scale"]);
const PASSES = { face: "face_yolov8n.pt", hands: "hand_yolov8n.pt" };
const LATENT = [
  "Latent",
  "Latent (antialiased)",
  "Latent (bicubic)",
  "Latent (bicubic antialiased)",
  "Latent (nearest)",
  "Latent (nearest-exact)",
];

const clone = (value) => JSON.parse(JSON.stringify(value ?? null));

function getPath(object, path) {
  let here = object;
  for (const part of path.split(".")) {
    if (here === null || here === undefined) return undefined;
    here = here[part];
  }
  return here;
}

function setPath(object, path, value) {
  const parts = path.split(".");
  let here = object;
  for (const part of parts.slice(0, -1)) {
    if (here[part] === null || typeof here[part] !== "object") here[part] = {};
    here = here[part];
  }
  here[parts[parts.length - 1]] = value;
}

function merge(base, extra) {
  const out = clone(base) || {};
  for (const [key, value] of Object.entries(extra || {})) {
    if (value && typeof value === "object" && !Array.isArray(value) && out[key] && typeof out[key] === "object") {
      out[key] = merge(out[key], value);
    } else {
      out[key] = clone(value);
    }
  }
  return out;
}

/** Select `value` in a <select>, adding it if the list lacks it (nothing changes silently). */
function choose(select, value) {
  const wanted = value === null || value === undefined ? "" : String(value);
  if (![...select.options].some((o) => o.value === wanted)) {
    select.append(h("option", { value: wanted, text: wanted }));
  }
  select.value = wanted;
}

function options(select, names, keepFirst) {
  const current = select.selectedIndex >= 0 ? select.value : null;
  const first = keepFirst ? [...select.options].slice(0, keepFirst) : [];
  select.replaceChildren(...first);
  for (const item of names) {
    const [value, label] = Array.isArray(item) ? item : [item, item];
    select.append(h("option", { value, text: label }));
  }
  if (current !== null) choose(select, current);
}

/** The field a message is about: "body.spec.width: …" -> "width", "model: …" -> "model". */
export function pathsOf(message) {
  const out = [];
  const text = String(message).replace(/^invalid job spec: /, "");
  for (const part of text.split("; ")) {
    const match = /^(?:job \d+: )?(?:body\.)?(?:spec\.|specs\.\d+\.)?([A-Za-z_][\w.]*):/.exec(part);
    if (match) out.push(match[1]);
  }
  return out;
}

function safeName(stem) {
  const cleaned = stem.replace(/[^\w.-]/g, "_").replace(/^[^\w]+/, "");
  return (cleaned || "pack").slice(0, 100);
}

const stemOf = (name) => name.replace(/\.[^.]*$/, "");

const LISTED = 3; // ids a "Queued" toast lists; a pack of thousands fits a phone's screen too

/** "Queued 2 jobs (3f2c0a1b, 9d8e7f6a)." or "Queued 3000 jobs (3f2c0a1b…)." */
function queuedLine(ids) {
  const count = ids.length;
  const which = count > LISTED ? `${short(ids[0])}…` : ids.map(short).join(", ");
  return `Queued ${count} job${count === 1 ? "" : "s"} (${which}).`;
}

export class Compose {
  constructor(app) {
    this.app = app;
    this.form = $("compose");
    this.defaults = null;
    this.base = null; // the spec the form started from (what it does not show is kept)
    this.inputs = [];
    this.pack = null;
    this.editing = null;
    this.listsReady = false;
    this.checkNumber = 0;
    this.promptBox = "c-prompt"; // where a picker inserts: the prompt box the user was last in
    this.check = debounce(() => this.runCheck(), 250);
  }

  async init() {
    this.defaults = await get("/api/v1/spec/defaults");
    this.base = clone(this.defaults);
    this.fillForm(this.base);
    this.bind();
    await this.loadLists();
  }

  // -- the backend's lists --------------------------------------------------------------------

  async loadLists() {
    const ask = (path) => get(`/api/v1/backend/${path}`);
    const names = ["models", "vaes", "samplers", "schedulers", "upscalers", "loras", "embeddings"];
    const answers = await Promise.allSettled(names.map(ask));
    const list = Object.fromEntries(names.map((n, i) => [n, answers[i]]));
    const ok = (n) => list[n].status === "fulfilled" && list[n].value;
    if (ok("models")) {
      options($("c-model"), list.models.value.map((m) => [m.model_name, m.title || m.model_name]), 1);
    }
    if (ok("vaes")) options($("c-vae"), list.vaes.value.map((v) => v.model_name), 3);
    if (ok("samplers")) options($("c-sampler"), list.samplers.value.map((s) => s.name));
    if (ok("schedulers")) options($("c-scheduler"), list.schedulers.value.map((s) => s.label));
    if (ok("upscalers")) {
      const upscalers = list.upscalers.value.map((u) => u.name).filter((n) => n !== "None");
      options($("c-up-upscaler"), upscalers);
      options($("c-hr-upscaler"), [...LATENT, ...upscalers]);
    }
    if (ok("loras")) {
      options($("c-lora"), list.loras.value.map((l) => l.alias || l.name), 1);
    }
    if (ok("embeddings")) {
      options($("c-embedding"), Object.keys(list.embeddings.value.loaded || {}).sort(), 1);
    }
    this.listsReady = names.every(ok);
    this.fillSelects(this.spec());
  }

  backendReady() {
    if (!this.listsReady) this.loadLists();
  }

  // -- form <-> spec --------------------------------------------------------------------------

  controls() {
    return [...this.form.querySelectorAll("[data-path]")].filter((el) => el.matches("input, select, textarea"));
  }

  fillForm(spec) {
    for (const el of this.controls()) {
      const pass = /^adetailer\.(face|hands)\./.exec(el.dataset.path);
      let value = getPath(spec, el.dataset.path);
      if (pass && !spec.adetailer?.[pass[1]]) {
        const defaults = { ...this.defaults.adetailer.face, model: PASSES[pass[1]] };
        value = getPath({ adetailer: { [pass[1]]: defaults } }, el.dataset.path);
      }
      if (el.type === "checkbox") el.checked = Boolean(value);
      else if (el.tagName === "SELECT") choose(el, value);
      else el.value = value === null || value === undefined ? "" : String(value);
    }
    for (const pass of Object.keys(PASSES)) {
      $(`c-ad-${pass}`).checked = Boolean(spec.adetailer?.[pass]);
    }
    this.inputs = clone(spec.inputs || []);
    $("c-per-image").checked = false;
    this.renderInputs();
    for (const [stage, on] of [
      ["img2img", spec.img2img?.enabled],
      ["adetailer", spec.adetailer?.enabled],
      ["upscale", spec.upscale?.enabled],
      ["txt2img", spec.txt2img?.enable_hr],
    ]) {
      if (on) $(`s-${stage}`).open = true;
    }
    this.syncPasses();
  }

  fillSelects(spec) {
    for (const el of this.controls()) {
      if (el.tagName === "SELECT") choose(el, getPath(spec, el.dataset.path));
    }
  }

  read(el) {
    const path = el.dataset.path;
    if (el.type === "checkbox") return el.checked;
    const raw = el.value;
    if (raw === "" && NULLABLE.has(path)) return null;
    if (el.type === "number") {
      const number = Number(raw);
      return raw.trim() !== "" && Number.isFinite(number) ? number : raw; // the API words it
    }
    return raw;
  }

  /** The JobSpec the form describes (one job; inputs all in it). */
  spec() {
    const spec = clone(this.base);
    for (const el of this.controls()) {
      if (/^adetailer\.(face|hands)\./.test(el.dataset.path)) continue;
      setPath(spec, el.dataset.path, this.read(el));
    }
    spec.adetailer = spec.adetailer || {};
    for (const pass of Object.keys(PASSES)) {
      if (!$(`c-ad-${pass}`).checked) {
        spec.adetailer[pass] = null;
        continue;
      }
      const start = this.base.adetailer?.[pass] || { ...this.defaults.adetailer.face, model: PASSES[pass] };
      const chosen = clone(start);
      for (const el of this.form.querySelectorAll(`[data-path^="adetailer.${pass}."]`)) {
        setPath(chosen, el.dataset.path.split(".").slice(2).join("."), this.read(el));
      }
      spec.adetailer[pass] = chosen;
    }
    spec.inputs = clone(this.inputs);
    if (this.inputs.length) spec.images = this.inputs.length;
    return spec;
  }

  /** What POST /api/v1/jobs gets for what is composed. */
  body() {
    if (this.pack) return { pack: this.pack };
    const spec = this.spec();
    if (this.inputs.length > 1 && $("c-per-image").checked && !this.editing) {
      return {
        specs: this.inputs.map((image) => ({ ...clone(spec), inputs: [image], images: 1 })),
      };
    }
    return { spec };
  }

  // -- events ---------------------------------------------------------------------------------

  bind() {
    this.form.addEventListener("input", () => this.changed());
    this.form.addEventListener("change", () => this.changed());
    this.form.addEventListener("keydown", (event) => {
      // Enter in a one-line field does not queue (only Ctrl+Enter, or the button, does).
      const oneLine = event.target.matches("input:not([type=checkbox]):not([type=file])");
      if (event.key === "Enter" && !event.ctrlKey && !event.metaKey && oneLine) event.preventDefault();
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    $("c-swap").addEventListener("click", () => {
      const w = $("c-width").value;
      $("c-width").value = $("c-height").value;
      $("c-height").value = w;
      this.changed();
    });
    $("c-random").addEventListener("click", () => {
      $("c-seed").value = "-1";
      this.changed();
    });
    for (const id of ["c-prompt", "c-negative"]) {
      $(id).addEventListener("focus", () => {
        this.promptBox = id;
      });
    }
    $("c-lora").addEventListener("change", (event) => {
      const name = event.target.value;
      event.target.value = "";
      if (name) this.insert(`<lora:${name}:1>`);
    });
    $("c-embedding").addEventListener("change", (event) => {
      const name = event.target.value;
      event.target.value = "";
      if (name) this.insert(`<embedding:${name}>`);
    });
    for (const pass of Object.keys(PASSES)) {
      $(`c-ad-${pass}`).addEventListener("change", () => this.syncPasses());
    }
    for (const [box, stage] of [["c-i2i", "img2img"], ["c-ad", "adetailer"], ["c-up", "upscale"], ["c-hr", "txt2img"]]) {
      $(box).addEventListener("change", (event) => {
        if (event.target.checked) $(`s-${stage}`).open = true; // its settings, at hand
      });
    }
    $("c-stop-edit").addEventListener("click", () => this.stopEditing());
    $("c-pack-clear").addEventListener("click", () => this.clearPack());
    $("c-files").addEventListener("change", async (event) => {
      await this.addInputs([...event.target.files]);
      event.target.value = "";
    });
    $("c-upload").addEventListener("change", async (event) => {
      await this.openFiles([...event.target.files]);
      event.target.value = "";
    });
    const drop = $("c-drop");
    for (const target of [drop, this.form.querySelector("fieldset.files")]) {
      target.addEventListener("dragover", (event) => {
        event.preventDefault();
        target.classList.add("over");
      });
      target.addEventListener("dragleave", () => target.classList.remove("over"));
      target.addEventListener("drop", async (event) => {
        event.preventDefault();
        target.classList.remove("over");
        const files = [...(event.dataTransfer?.files || [])];
        if (target === drop) await this.addInputs(files);
        else await this.openFiles(files);
      });
    }
  }

  changed() {
    this.syncPasses();
    this.check();
  }

  syncPasses() {
    for (const pass of Object.keys(PASSES)) {
      const on = $(`c-ad-${pass}`).checked;
      for (const el of this.form.querySelectorAll(`[data-path^="adetailer.${pass}."]`)) {
        el.disabled = !on;
      }
    }
    const fromImages = this.inputs.length > 0;
    $("c-images").disabled = fromImages;
    if (fromImages) $("c-images").value = String(this.inputs.length);
    $("s-txt2img-note").textContent = fromImages
      ? "skipped: the job starts from the images below"
      : "always first";
    $("c-per-image").disabled = this.inputs.length < 2 || Boolean(this.editing);
    this.form.classList.toggle("has-pack", Boolean(this.pack));
  }

  insert(text) {
    const area = $(this.promptBox);
    const start = area.selectionStart ?? area.value.length;
    const end = area.selectionEnd ?? area.value.length;
    const before = area.value.slice(0, start);
    const spacer = before && !/\s$/.test(before) ? ", " : "";
    area.value = before + spacer + text + area.value.slice(end);
    const caret = before.length + spacer.length + text.length;
    area.focus();
    area.setSelectionRange(caret, caret);
    this.changed();
  }

  // -- checking and queueing ----------------------------------------------------------------

  async runCheck() {
    const number = ++this.checkNumber;
    const body = this.body();
    try {
      const checked = await post("/api/v1/jobs/check", body);
      if (number !== this.checkNumber) return;
      this.showMessages([], checked.warnings);
      const jobs = `${checked.jobs} job${checked.jobs === 1 ? "" : "s"}`;
      const images = `${checked.images} image${checked.images === 1 ? "" : "s"}`;
      $("c-summary").textContent = `${jobs}, ${images}`;
      if (this.pack) $("c-pack-text").textContent = `Pack ${this.pack.name}: ${jobs}, ${images}`;
    } catch (error) {
      if (number !== this.checkNumber) return;
      if (error instanceof ApiError && error.status === 422) this.showMessages(error.messages, []);
      $("c-summary").textContent = "";
      // The banner says what the check found (it said "checking…" for good).
      if (this.pack) $("c-pack-text").textContent = `Pack ${this.pack.name}: ${error.message}`;
    }
  }

  showMessages(messages, warnings) {
    fill($("c-messages"), messages.map((m) => h("li", { text: m })));
    fill($("c-warnings"), warnings.map((w) => h("li", { text: w })));
    const wrong = new Set(messages.flatMap(pathsOf));
    for (const el of this.form.querySelectorAll("[data-path]")) {
      const path = el.dataset.path;
      const bad = [...wrong].some((p) => p === path || p.startsWith(`${path}.`) || path.startsWith(`${p}.`));
      if (bad) {
        el.setAttribute("aria-invalid", "true");
        el.setAttribute("aria-describedby", "c-messages");
      } else {
        el.removeAttribute("aria-invalid");
        el.removeAttribute("aria-describedby");
      }
    }
  }

  async submit() {
    if (this.busy) return;
    this.busy = true;
    $("c-queue").disabled = true;
    try {
      if (this.editing) {
        const job = await put(`${jobPath(this.editing)}/spec`, { spec: this.spec() });
        this.app.toast(`Job ${short(job.id)} changed.`);
        this.stopEditing();
        this.app.queue.refresh();
      } else {
        const body = this.body();
        const answer = await post("/api/v1/jobs", body);
        this.app.toast(queuedLine(answer.ids));
        this.showMessages([], answer.warnings || []);
        this.app.queue.refresh();
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 422) {
        this.showMessages(error.messages, []);
        this.app.toast("Nothing was queued: see the messages.", "error");
      } else {
        this.app.toast(error.message, "error");
      }
    } finally {
      this.busy = false;
      $("c-queue").disabled = false;
    }
  }

  // -- loading a spec -------------------------------------------------------------------------

  /** Compose from a job's spec (history, an imported PNG, a queued job to edit). */
  load(spec, { editing = null, note = "" } = {}) {
    const base = merge(this.defaults, spec);
    delete base.provenance;
    this.base = base;
    this.clearPack(false);
    this.fillForm(base);
    this.fillSelects(base);
    this.editing = editing;
    $("c-editing").hidden = !editing;
    $("c-editing-text").textContent = editing ? `Editing queued job ${short(editing)}.` : "";
    $("c-queue").firstChild.textContent = editing ? "Save changes " : "Queue ";
    this.app.show("compose");
    if (note) this.app.toast(note);
    $("c-prompt").focus();
    this.changed();
  }

  edit(job) {
    this.load(job.spec, { editing: job.id });
  }

  stopEditing() {
    this.editing = null;
    $("c-editing").hidden = true;
    $("c-queue").firstChild.textContent = "Queue ";
    this.changed();
  }

  setSeed(seed) {
    $("c-seed").value = String(seed);
    this.app.show("compose");
    this.app.toast(`Seed ${seed} in compose.`);
    this.changed();
  }

  // -- input images ---------------------------------------------------------------------------

  /** Uploads run one after another, in the order the user chose or dropped the files. */
  addInputs(files) {
    this.uploads = (this.uploads || Promise.resolve()).then(() => this.upload(files));
    return this.uploads;
  }

  async upload(files) {
    const images = files.filter((f) => /^image\//.test(f.type) || /\.(png|jpe?g|webp)$/i.test(f.name));
    for (const file of files.filter((f) => !images.includes(f))) {
      this.app.toast(`${file.name}: not an image`, "error");
    }
    for (const file of images) {
      try {
        const data = await readAsDataUrl(file);
        const image = await post("/api/v1/inputs", { name: file.name, data });
        this.inputs.push(image);
      } catch (error) {
        this.app.toast(error.message, "error");
        if (error instanceof ApiError) this.showMessages(error.messages, []);
      }
    }
    this.renderInputs();
    this.changed();
  }

  renderInputs() {
    const list = $("c-inputs");
    fill(
      list,
      this.inputs.map((image, index) =>
        h(
          "li",
          { class: "input-item" },
          h("img", {
            src: `/api/v1/inputs/${image.sha256}`,
            alt: "",
            width: 64,
            height: 64,
            loading: "lazy",
          }),
          h("span", { class: "name", text: image.name }),
          h("span", { class: "muted", text: `${image.size[0]}×${image.size[1]}` }),
          h("button", {
            type: "button",
            class: "quiet",
            "aria-label": `Remove ${image.name}`,
            text: "Remove",
            onclick: () => {
              this.inputs.splice(index, 1);
              this.renderInputs();
              this.changed();
            },
          }),
        ),
      ),
    );
    this.syncPasses();
  }

  // -- packs, presets, PNGs -------------------------------------------------------------------

  async openFiles(files) {
    if (!files.length) return;
    const png = files.filter((f) => /\.png$/i.test(f.name));
    const jsons = files.filter((f) => /\.json$/i.test(f.name));
    const texts = files.filter((f) => /\.txt$/i.test(f.name));
    try {
      if (png.length && !jsons.length && !texts.length) {
        const data = await readAsDataUrl(png[0]);
        const imported = await post("/api/v1/import/png", { name: png[0].name, data });
        this.load(imported.spec, { note: `Settings of ${png[0].name} loaded.` });
        this.showMessages([], imported.warnings || []);
        return;
      }
      const sidecar = jsons.length ? await readAsJson(jsons[0]) : null;
      const isPack = texts.length > 0 || Boolean(sidecar?.pack_data?.slots?.length);
      if (sidecar && !isPack) {
        const name = safeName(stemOf(jsons[0].name));
        const preset = await post("/api/v1/import/preset", { name, sidecar });
        this.applyPreset(preset);
        return;
      }
      await this.openPack(texts, jsons[0], sidecar);
    } catch (error) {
      if (error instanceof ApiError) this.showMessages(error.messages, []);
      if (error instanceof FileError) this.showMessages([error.message], []);
      this.app.toast(error.message, "error");
    }
  }

  async openPack(texts, json, sidecar) {
    const contents = new Map();
    for (const file of texts) contents.set(file, await readAsText(file));
    // A .txt another file names as __stem__ is a wildcard file; the pack is what is left
    // (the .txt beside the .json first).
    const named = (file) =>
      [...contents.entries()].some(([other, text]) => other !== file && text.includes(`__${stemOf(file.name)}__`));
    let main = json ? texts.find((f) => stemOf(f.name) === stemOf(json.name)) : undefined;
    if (!main) main = texts.find((f) => !named(f));
    const wildcards = {};
    for (const file of texts) {
      if (file !== main) wildcards[stemOf(file.name)] = contents.get(file);
    }
    const name = safeName(stemOf((main || json).name));
    this.pack = { name, wildcards };
    if (main) this.pack.text = contents.get(main);
    if (sidecar) this.pack.sidecar = sidecar;
    $("c-pack").hidden = false;
    $("c-pack-text").textContent = `Pack ${name}: checking…`;
    this.changed();
  }

  clearPack(check = true) {
    this.pack = null;
    $("c-pack").hidden = true;
    if (check) this.changed();
  }

  applyPreset(preset) {
    const current = this.spec();
    const fields = clone(preset.fields);
    if (fields.negative_prompt) {
      fields.negative_prompt = [current.negative_prompt, fields.negative_prompt].filter(Boolean).join(", ");
    }
    delete fields.prompt;
    const spec = merge(current, fields);
    this.base = merge(this.base, fields);
    this.fillForm(spec);
    this.fillSelects(spec);
    this.showMessages([], preset.warnings || []);
    this.app.toast(`Preset ${preset.name} applied.`);
    this.changed();
  }
}
