// Building elements from data: text is always text (textContent, text nodes), never markup.

/** h("li", {class: "row", onclick: fn, dataset: {id}}, child, "text", ...) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children (text stays text). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (id) => document.getElementById(id);

/** Set an element's text only when it changes (no layout work for the same words). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** The same for an attribute (null removes it). */
export function setAttr(el, name, value) {
  if (value === null || value === undefined) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== String(value)) {
    el.setAttribute(name, String(value));
  }
}

export function short(id) {
  return id ? id.slice(0, 8) : "";
}

/** A job's file as a name inside its run folder ("1_txt2img.png", "failures/x.json"). */
export function relative(path, runDir) {
  if (!path) return "";
  if (runDir && path.startsWith(runDir + "/")) return path.slice(runDir.length + 1);
  if (runDir && path.startsWith(runDir + "\\")) return path.slice(runDir.length + 1);
  return null;
}

export function fileUrl(jobId, name) {
  return `/api/v1/jobs/${encodeURIComponent(jobId)}/files/${name.split("/").map(encodeURIComponent).join("/")}`;
}

export function thumbUrl(jobId, name, size = 256) {
  const path = name.split("/").map(encodeURIComponent).join("/");
  return `/api/v1/jobs/${encodeURIComponent(jobId)}/thumbs/${path}?size=${size}`;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

export function seconds(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "";
  if (value < 1) return "<1 s";
  if (value < 90) return `${Math.round(value)} s`;
  const minutes = Math.floor(value / 60);
  return `${minutes} min ${Math.round(value - minutes * 60)} s`;
}

const REASONS = {}; // an envelope's environmental reason in words (from the API, at start)

export function knowReasons(words) {
  Object.assign(REASONS, words || {});
}

/** The failure in one line, as every door says it: "txt2img image 1: the backend ran out of
 * memory" (StableNew's words for an environmental reason, else the root cause's first line). */
export function reasonLine(error) {
  if (!error) return "";
  let where = error.stage || "";
  if (error.image_index !== null && error.image_index !== undefined) {
    where = `${where} image ${error.image_index}`.trim();
  }
  let why = error.reason ? REASONS[error.reason] || error.reason : "";
  if (!why) {
    const causes = error.causes || [];
    const root = (causes.length ? causes[causes.length - 1].message : error.message) || "";
    why = root.trim().split("\n")[0] || error.type;
  }
  return where ? `${where}: ${why}` : why;
}

/** The stages a spec runs, in order (as JobSpec.stages()). */
export function stagesOf(spec) {
  const out = [];
  if (!spec.inputs || spec.inputs.length === 0) out.push("txt2img");
  if (spec.img2img && spec.img2img.enabled) out.push("img2img");
  const ad = spec.adetailer;
  if (ad && ad.enabled && (ad.face || ad.hands)) out.push("adetailer");
  if (spec.upscale && spec.upscale.enabled) out.push("upscale");
  return out;
}

export function summary(spec) {
  const parts = [stagesOf(spec).join(" → ")];
  parts.push(`${spec.images} image${spec.images === 1 ? "" : "s"}`);
  parts.push(`${spec.width}×${spec.height}`);
  parts.push(`${spec.steps} steps`);
  if (spec.seed !== -1) parts.push(`seed ${spec.seed}`);
  return parts.join(" · ");
}

/** Run `fn` once per animation frame at most, however often it is asked for. */
export function perFrame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

/** Run `fn` at most once per `ms` (the last call is never lost). */
export function throttle(fn, ms) {
  let timer = 0;
  let last = 0;
  return () => {
    if (timer) return;
    const wait = Math.max(0, ms - (Date.now() - last));
    timer = setTimeout(() => {
      timer = 0;
      last = Date.now();
      requestAnimationFrame(() => fn());
    }, wait);
  };
}

/** Run `fn` `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = 0;
  const call = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  call.now = (...args) => {
    clearTimeout(timer);
    return fn(...args);
  };
  return call;
}

export function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/** A file the page refuses to read, named with why ("x.txt: not UTF-8 text (…)"). */
export class FileError extends Error {}

/** The offset of the first byte that does not belong to UTF-8, or -1. */
function firstBadByte(bytes) {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i];
    let more = 0;
    if (lead < 0x80) more = 0;
    else if (lead >= 0xc2 && lead <= 0xdf) more = 1;
    else if (lead >= 0xe0 && lead <= 0xef) more = 2;
    else if (lead >= 0xf0 && lead <= 0xf4) more = 3;
    else return i;
    if (i + more >= bytes.length) return i;
    for (let k = 1; k <= more; k += 1) {
      // The second byte's range excludes overlong forms, surrogates and code points past U+10FFFF.
      const low = k === 1 && lead === 0xe0 ? 0xa0 : k === 1 && lead === 0xf0 ? 0x90 : 0x80;
      const high = k === 1 && lead === 0xed ? 0x9f : k === 1 && lead === 0xf4 ? 0x8f : 0xbf;
      if (bytes[i + k] < low || bytes[i + k] > high) return i;
    }
    i += more + 1;
  }
  return -1;
}

/** A text file as UTF-8 (a BOM dropped), or a FileError worded as the CLI's: a file in another
 * encoding is refused, where FileReader.readAsText would put U+FFFD for what it cannot read. */
export async function readAsText(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const utf16 = (bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff);
    const hint = utf16 ? "it looks like UTF-16" : `byte ${firstBadByte(bytes)} is not UTF-8`;
    throw new FileError(`${file.name}: not UTF-8 text (${hint}); save it as UTF-8`);
  }
}

/** A JSON file (UTF-8), or a FileError that names it: JSON.parse's words alone did not. */
export async function readAsJson(file) {
  const text = await readAsText(file);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new FileError(`${file.name}: not JSON (${error.message})`);
  }
}
