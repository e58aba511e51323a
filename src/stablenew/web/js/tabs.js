// One event stream for every tab of this StableNew in a browser. Each open stream holds an
// HTTP/1.1 connection, and a browser allows six per host: with a stream per tab, a seventh tab
// never loaded and every request of the others stalled. So one tab (the holder of a Web Lock)
// reads the stream and relays it to the others over a BroadcastChannel; when it closes, the
// browser frees the lock, the next tab takes over and resumes from its own last seq
// (Last-Event-ID), so no event is lost and, each tab dropping a seq it has, none shown twice.
//
// Each relayed event carries the seq the leader had before it (`prev`): a tab that is behind
// that (it read the log's end before the new leader did) replays the gap on a short-lived
// stream of its own, holding the relay meanwhile, so every tab sees every seq in order.
//
// Without Web Locks (a page over plain http from another machine is not a secure context)
// every tab reads its own stream, as a single tab does.

import { EventStream } from "./stream.js";

const NAME = "stablenew-events";

export class SharedStream {
  /** The same handlers as EventStream's; each tab gets every event once, in seq order. */
  constructor(handlers) {
    this.handlers = {
      onState: () => {},
      onResumed: () => {},
      onUnauthorized: () => {},
      ...handlers,
    };
    this.last = 0;
    this.started = false;
    this.leader = false;
    this.state = "connecting";
    this.stream = null;
    this.replay = null;
    this.held = []; // relayed events kept while the log's end or a gap is read
    this.dropped = 0;
    this.shared = "BroadcastChannel" in window && Boolean(navigator.locks);
    if (this.shared) {
      // Listening before the log's end is read: nothing relayed in between is missed.
      this.channel = new BroadcastChannel(NAME);
      this.channel.onmessage = (message) => this.heard(message.data);
      this.post({ type: "hello" });
    }
  }

  start(lastSeq) {
    this.last = lastSeq;
    this.started = true;
    if (!this.shared) {
      this.lead();
      return;
    }
    this.release();
    // Held until the tab closes: the browser then grants it to another tab.
    navigator.locks.request(NAME, () => {
      this.lead();
      return new Promise(() => {});
    });
  }

  post(message) {
    if (this.channel) this.channel.postMessage(message);
  }

  lead() {
    if (this.replay) this.replay.stop(); // the leader's own stream replays the gap instead
    this.replay = null;
    this.held = [];
    this.leader = true;
    this.stream = new EventStream({
      onEvent: (kind, data, seq) => {
        this.post({ type: "event", kind, data, seq, prev: this.last });
        this.accept(kind, data, seq);
      },
      onProgress: (data) => {
        this.post({ type: "progress", data });
        this.handlers.onProgress(data);
      },
      onState: (state) => {
        this.post({ type: "state", state });
        this.setState(state);
      },
      onResumed: () => {
        this.post({ type: "resumed" });
        this.handlers.onResumed();
      },
      onUnauthorized: () => {
        this.post({ type: "unauthorized" });
        this.handlers.onUnauthorized();
      },
    });
    this.stream.start(this.last);
  }

  stop() {
    if (this.stream) this.stream.stop();
    if (this.replay) this.replay.stop();
    if (this.channel) this.channel.close();
  }

  setState(state) {
    this.state = state;
    this.handlers.onState(state);
  }

  heard(message) {
    if (this.leader) {
      if (message.type === "hello") this.post({ type: "state", state: this.state });
      return;
    }
    if (message.type === "event") {
      this.held.push(message);
      this.release();
    } else if (message.type === "progress") {
      this.handlers.onProgress(message.data);
    } else if (message.type === "state") {
      this.setState(message.state);
    } else if (message.type === "resumed") {
      this.handlers.onResumed();
    } else if (message.type === "unauthorized") {
      this.handlers.onUnauthorized();
    }
  }

  /** Hand on what was relayed, in order, unless the tab is still reading what comes before. */
  release() {
    while (this.started && !this.replay && this.held.length) {
      const message = this.held[0];
      if (message.prev > this.last) {
        this.catchUp(message.prev);
        return;
      }
      this.held.shift();
      this.accept(message.kind, message.data, message.seq);
    }
  }

  accept(kind, data, seq) {
    if (seq <= this.last) {
      this.dropped += 1;
      return;
    }
    this.last = seq;
    this.handlers.onEvent(kind, data, seq);
  }

  /** Read the events after this tab's last seq up to `upto` from the server itself. */
  catchUp(upto) {
    const replay = new EventStream({
      onEvent: (kind, data, seq) => {
        this.accept(kind, data, seq);
        if (seq >= upto) {
          replay.stop();
          if (this.replay === replay) this.replay = null;
          this.release();
        }
      },
      onProgress: () => {},
      onUnauthorized: () => this.handlers.onUnauthorized(),
    });
    this.replay = replay;
    replay.start(this.last);
  }
}
