// The event stream (/api/v1/events): the store's lifecycle log, live, resumed after a dropped
// connection from the last seq seen (Last-Event-ID), so nothing is lost and nothing shown twice.
//
// Read with fetch rather than EventSource: every event kind arrives without naming it in
// advance, the reconnection is ours (the page says "reconnecting…", backs off, and after a
// server restart asks for exactly what it missed), and a silent connection is noticed.

const KEEPALIVE_GRACE = 45000; // ms: the server comments every 15 s; three missed = gone
const MAX_DELAY = 5000;

export class EventStream {
  /**
   * onEvent(kind, data, seq): a lifecycle event, each seq once and in order.
   * onProgress(data): live step progress (no seq).
   * onState(state): "connecting" | "live" | "reconnecting".
   * onResumed(): the stream is back after a drop (re-read what has no seq: progress, state).
   */
  constructor({ onEvent, onProgress, onState, onResumed, onUnauthorized }) {
    this.onEvent = onEvent;
    this.onProgress = onProgress;
    this.onState = onState || (() => {});
    this.onResumed = onResumed || (() => {});
    this.onUnauthorized = onUnauthorized || (() => {});
    this.last = 0;
    this.delay = 500;
    this.opened = 0;
    this.dropped = 0; // events the server sent again (already shown): never shown twice
    this.controller = null;
    this.stopped = false;
    this.heard = 0;
    this.watch = 0;
  }

  start(lastSeq) {
    this.last = lastSeq;
    this.connect();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
    clearInterval(this.watch);
  }

  async connect() {
    if (this.stopped) return;
    const controller = new AbortController();
    this.controller = controller;
    this.onState(this.opened ? "reconnecting" : "connecting");
    try {
      const answer = await fetch("/api/v1/events", {
        headers: { Accept: "text/event-stream", "Last-Event-ID": String(this.last) },
        cache: "no-store",
        signal: controller.signal,
      });
      if (answer.status === 401) {
        this.onUnauthorized();
        return;
      }
      if (!answer.ok || !answer.body) throw new Error(`HTTP ${answer.status}`);
      this.opened += 1;
      this.delay = 500;
      this.heard = Date.now();
      this.onState("live");
      if (this.opened > 1) this.onResumed();
      this.watchSilence(controller);
      await this.read(answer.body.getReader());
    } catch (error) {
      if (this.stopped) return;
    } finally {
      clearInterval(this.watch);
    }
    if (this.stopped) return;
    this.onState("reconnecting");
    setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, MAX_DELAY);
  }

  watchSilence(controller) {
    clearInterval(this.watch);
    this.watch = setInterval(() => {
      if (Date.now() - this.heard > KEEPALIVE_GRACE) controller.abort();
    }, 5000);
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      this.heard = Date.now();
      buffer += decoder.decode(value, { stream: true });
      if (buffer.includes("\r")) buffer = buffer.replace(/\r\n?/g, "\n");
      let cut = buffer.indexOf("\n\n");
      while (cut >= 0) {
        this.frame(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        cut = buffer.indexOf("\n\n");
      }
    }
  }

  frame(block) {
    let id = null;
    let kind = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "event") kind = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) this.delay = Number(value);
    }
    if (!data.length) return;
    let payload;
    try {
      payload = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    if (id !== null && /^\d+$/.test(id)) {
      const seq = Number(id);
      if (seq <= this.last) {
        this.dropped += 1;
        return;
      }
      this.last = seq;
      this.onEvent(kind, payload, seq);
    } else if (kind === "progress") {
      this.onProgress(payload);
    }
  }
}
