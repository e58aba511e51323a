// Start-up and wiring: views (tabs on a desktop, a bottom bar on a phone), the event stream,
// keyboard shortcuts, the toast. Every part reads the public API and reacts to the stream.

import { get, post, whenUnauthorized } from "./api.js";
import { Backend, Log } from "./backend.js";
import { Compose } from "./compose.js";
import { $, fill, h, knowReasons } from "./dom.js";
import { Gallery } from "./gallery.js";
import { Queue, Running } from "./queue.js";
import { SharedStream } from "./tabs.js";

const VIEWS = ["compose", "queue", "gallery", "backend"];
const WIDE = window.matchMedia("(min-width: 1000px)");
const POLL = 10000; // ms: a safety net; every queue change arrives as an event

const app = {
  stats: { events: 0, progress: 0, resumed: 0 },

  show(view) {
    if (!VIEWS.includes(view)) view = "compose";
    document.body.dataset.view = view;
    for (const tab of document.querySelectorAll("[role=tab]")) {
      const selected = tab.dataset.view === view || (WIDE.matches && view === "queue" && tab.dataset.view === "compose");
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
    }
    if (view === "gallery" && !app.gallery.jobs.size) app.gallery.more(); // then as it scrolls
    if (view === "backend") {
      app.backend.load();
      app.log.render(); // drawn while hidden: scroll to the end now, if following
    }
    if (window.location.hash !== `#/${view}`) history.replaceState(null, "", `#/${view}`);
  },

  /** Whether a view is on screen (a desktop shows compose and the queue side by side). */
  visible(view) {
    const current = document.body.dataset.view;
    if (current === view) return true;
    return WIDE.matches && ["compose", "queue"].includes(current) && ["compose", "queue"].includes(view);
  },

  toast(message, kind = "info") {
    const toast = $("toast");
    const item = h("p", { class: `toast-item ${kind}`, text: message });
    toast.append(item);
    while (toast.childElementCount > 3) toast.firstElementChild.remove();
    setTimeout(() => item.remove(), kind === "error" ? 9000 : 4000);
  },
};

function bindTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => app.show(tab.dataset.view));
    tab.addEventListener("keydown", (event) => {
      const shown = tabs.filter((t) => t.offsetParent !== null);
      const here = shown.indexOf(tab);
      let next = null;
      if (event.key === "ArrowRight") next = shown[(here + 1) % shown.length];
      if (event.key === "ArrowLeft") next = shown[(here - 1 + shown.length) % shown.length];
      if (event.key === "Home") next = shown[0];
      if (event.key === "End") next = shown[shown.length - 1];
      if (next) {
        event.preventDefault();
        app.show(next.dataset.view);
        next.focus();
      }
    });
  }
  WIDE.addEventListener("change", () => app.show(document.body.dataset.view));
}

function bindKeys() {
  document.addEventListener("keydown", (event) => {
    const dialogOpen = document.querySelector("dialog[open]");
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !dialogOpen) {
      event.preventDefault();
      app.compose.submit(); // from anywhere, the prompt boxes included
    } else if (event.key === "Escape" && !dialogOpen && app.running.job && app.visible("queue")) {
      const typing = event.target.matches("input, textarea, select");
      if (!typing) {
        event.preventDefault();
        app.running.cancel();
      }
    }
  });
}

function connection(state) {
  const pill = $("conn");
  pill.dataset.state = state;
  pill.textContent = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…" }[state] || state;
  document.body.dataset.stream = state;
}

/** After a dropped stream: the lifecycle events it missed are replayed by the server; what has
 * no seq (the running job's progress, the queue's order) is read again. */
function resync() {
  app.stats.resumed += 1;
  app.running.sync().catch(() => {});
  app.queue.refresh();
  app.backend.refresh();
}

function onEvent(kind, event) {
  app.stats.events += 1;
  app.log.add(event);
  app.running.onEvent(kind, event);
  app.queue.onEvent(kind);
  app.gallery.onEvent(kind, event);
  app.backend.onEvent(kind);
}

async function boot() {
  whenUnauthorized(() => window.location.assign("/login"));
  app.compose = new Compose(app);
  app.running = new Running(app);
  app.queue = new Queue(app);
  app.gallery = new Gallery(app);
  app.backend = new Backend(app);
  app.log = new Log(app);
  window.stablenew = app; // for a curious user's console (and the browser tests)
  bindTabs();
  bindKeys();
  const fromHash = () => window.location.hash.replace(/^#\/?/, "");
  app.show(fromHash());
  window.addEventListener("hashchange", () => app.show(fromHash()));

  const [session, reasons] = await Promise.all([get("/api/v1/session"), get("/api/v1/failure-reasons")]);
  knowReasons(reasons);
  if (session.token_required) {
    $("logout").hidden = false;
    $("logout").addEventListener("click", async () => {
      await post("/api/v1/logout", {});
      window.location.assign("/login");
    });
  }
  // The log's end and the seq it reaches, then the stream from exactly there (shared with
  // this browser's other tabs, listened to before the log's end is read).
  app.stream = new SharedStream({
    onEvent,
    onProgress: (event) => {
      app.stats.progress += 1;
      app.running.onProgress(event);
    },
    onState: connection,
    onResumed: resync,
    onUnauthorized: () => window.location.assign("/login"),
  });
  const recent = await get("/api/v1/events/recent?limit=300");
  app.log.load(recent.events);
  app.stream.start(recent.last_seq);

  await Promise.all([app.compose.init(), app.queue.load(), app.running.sync(), app.gallery.init(), app.backend.load()]);
  document.body.dataset.ready = "true";
  performance.mark("stablenew:interactive");

  setInterval(() => {
    if (document.visibilityState === "visible" && app.visible("queue")) app.queue.refresh();
  }, POLL);
}

boot().catch((error) => {
  document.body.dataset.ready = "error";
  fill($("toast"), h("p", { class: "toast-item error", text: `StableNew could not start the page: ${error.message}` }));
});
