// A resumable Server-Sent Events client on fetch().
//
// Why not EventSource: it cannot send an Authorization header, and an API key
// must never travel in a URL. This client keeps EventSource's semantics instead:
// it parses the stream by the WHATWG rules, remembers the last event id, and on
// any drop (network error, server restart, a replica draining, a laptop waking
// from sleep) reconnects with `Last-Event-ID`, waiting the server's `retry:`
// first. Repeated failures back off (doubling, capped, with jitter so a fleet of
// viewers does not reconnect in lockstep), and a stream that goes silent for
// longer than a few heartbeats is presumed dead and reopened. Events whose id
// is not after the last one seen are dropped, so text is never duplicated even
// if a server replays from an older cursor.

/** Incremental parser for `text/event-stream` (WHATWG HTML, "Event stream interpretation"). */
export function createSseParser({ onEvent, onRetry, lastEventId = "" }) {
  let buffer = "";
  let data = [];
  let eventType = "";
  let idBuffer = lastEventId;
  let sawFirstChunk = false;

  function dispatch() {
    const id = idBuffer;
    if (data.length === 0) {
      eventType = "";
      return;
    }
    const event = { type: eventType || "message", data: data.join("\n"), id };
    data = [];
    eventType = "";
    onEvent(event);
  }

  function processLine(line) {
    if (line === "") return dispatch();
    if (line.startsWith(":")) return undefined; // comment, e.g. `: ping`
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") eventType = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) idBuffer = value;
    else if (field === "retry" && /^\d+$/.test(value)) onRetry(Number(value));
    return undefined;
  }

  return {
    push(text) {
      if (!sawFirstChunk && text.length > 0) {
        sawFirstChunk = true;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      buffer += text;
      let start = 0;
      for (let i = 0; i < buffer.length; i++) {
        const c = buffer[i];
        if (c !== "\n" && c !== "\r") continue;
        if (c === "\r" && i + 1 === buffer.length) break; // a "\n" may follow in the next chunk
        processLine(buffer.slice(start, i));
        if (c === "\r" && buffer[i + 1] === "\n") i++;
        start = i + 1;
      }
      buffer = buffer.slice(start);
    },
  };
}

/** Orders native event ids ("<ms>-<seq>", Redis stream ids). */
export function compareEventIds(a, b) {
  const [am, as = 0] = a.split("-").map(Number);
  const [bm, bs = 0] = b.split("-").map(Number);
  if ([am, as, bm, bs].some(Number.isNaN)) return a < b ? -1 : a > b ? 1 : 0;
  return am - bm || as - bs;
}

export class HttpError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

const TERMINAL = new Set(["done", "error", "cancelled"]);
const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/**
 * Follows one generation's events until a terminal event, across any number of drops.
 *
 * options:
 *   headers():        extra request headers (the API key), read on every (re)connect
 *   onEvent(event):   {type, data (parsed JSON), id}
 *   onState(state, info): "connecting" | "open" | "dropped" | "closed" | "failed"
 *   onUnauthorized(error): resolve to retry (e.g. after asking for a key), reject to stop
 *   lastEventId:      resume after this id (e.g. from a snapshot)
 *   stallMs:          reopen a stream that sent nothing, not even a ping, for this long
 */
export class ResumableEventStream {
  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.lastEventId = options.lastEventId || "";
    this.retryMs = 1000;
    this.failures = 0;
    this.connections = 0;
    this.finished = false;
    this.stopped = new AbortController();
    this.wake = null;
    this.stallMs = options.stallMs ?? 45000;
    this._onOnline = () => this.wake?.();
    window.addEventListener("online", this._onOnline);
    document.addEventListener("visibilitychange", this._onOnline);
  }

  /** Runs until the generation ends, fails for good, or close() is called. */
  async run() {
    try {
      while (!this.finished && !this.stopped.signal.aborted) {
        const outcome = await this._connectOnce();
        if (outcome === "finished" || outcome === "failed" || this.stopped.signal.aborted) break;
        this.failures += 1;
        const delay = this._delay();
        this._state("dropped", { retryInMs: delay, reason: outcome, lastEventId: this.lastEventId });
        await this._waitBeforeRetry(delay);
      }
    } finally {
      this._detach();
    }
  }

  close() {
    this.stopped.abort();
    this.wake?.();
    this._detach();
  }

  _detach() {
    window.removeEventListener("online", this._onOnline);
    document.removeEventListener("visibilitychange", this._onOnline);
  }

  _state(state, info = {}) {
    this.options.onState?.(state, info);
  }

  _delay() {
    const base = Math.max(this.retryMs, 100);
    const cap = Math.max(base, 10000);
    const backoff = Math.min(cap, base * 2 ** Math.max(0, this.failures - 1));
    return Math.round(backoff * (0.8 + Math.random() * 0.4));
  }

  async _waitBeforeRetry(delay) {
    const woken = new Promise((resolve) => { this.wake = resolve; });
    await Promise.race([sleep(delay, this.stopped.signal), woken]);
    this.wake = null;
  }

  /** One HTTP request. Returns "finished", "failed", or why it should be retried. */
  async _connectOnce() {
    const attempt = new AbortController();
    const onStop = () => attempt.abort();
    this.stopped.signal.addEventListener("abort", onStop, { once: true });
    let stallTimer = null;
    let opened = false;
    const armStallTimer = () => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => attempt.abort(), this.stallMs);
    };
    this._state("connecting", { resuming: this.connections > 0, lastEventId: this.lastEventId });
    try {
      const headers = { Accept: "text/event-stream", ...(this.options.headers?.() || {}) };
      if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
      armStallTimer();
      const response = await fetch(this.url, { headers, signal: attempt.signal, cache: "no-store" });
      if (!response.ok) return await this._httpFailure(response);
      opened = true;
      this.connections += 1;
      this.failures = 0;
      this._state("open", { resumed: this.connections > 1, lastEventId: this.lastEventId });
      const parser = createSseParser({
        lastEventId: this.lastEventId,
        onRetry: (ms) => { this.retryMs = ms; },
        onEvent: (raw) => this._deliver(raw),
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      while (!this.finished) {
        const { value, done } = await reader.read();
        if (done) break;
        armStallTimer();
        parser.push(value);
      }
      if (this.finished) {
        reader.cancel().catch(() => {});
        this._state("closed", { lastEventId: this.lastEventId });
        return "finished";
      }
      return "server closed the stream before the end";
    } catch {
      if (this.stopped.signal.aborted) return "failed";
      if (attempt.signal.aborted) return "no data for too long";
      return opened ? "the connection broke" : "the server could not be reached";
    } finally {
      clearTimeout(stallTimer);
      this.stopped.signal.removeEventListener("abort", onStop);
    }
  }

  async _httpFailure(response) {
    let type = "api_error";
    let message = `HTTP ${response.status}`;
    try {
      const body = await response.json();
      type = body?.error?.type || type;
      message = body?.error?.message || message;
    } catch { /* not JSON: keep the status line */ }
    const error = new HttpError(response.status, type, message);
    if (response.status === 401 && this.options.onUnauthorized) {
      try {
        await this.options.onUnauthorized(error);
        return "retry with a new key";
      } catch {
        this._state("failed", { error });
        return "failed";
      }
    }
    if (response.status === 429 || response.status >= 500) {
      const after = Number(response.headers.get("Retry-After"));
      if (after > 0) this.retryMs = Math.min(after * 1000, 30000);
      return `server answered ${response.status}`;
    }
    this._state("failed", { error });
    return "failed";
  }

  _deliver(raw) {
    if (raw.id && this.lastEventId && compareEventIds(raw.id, this.lastEventId) <= 0) {
      return; // already seen: never apply an event twice
    }
    let data = null;
    try {
      data = JSON.parse(raw.data);
    } catch {
      data = { raw: raw.data };
    }
    if (raw.id) this.lastEventId = raw.id;
    const finishedSnapshot =
      raw.type === "resync" && ["completed", "failed", "cancelled"].includes(data?.status);
    if (TERMINAL.has(raw.type) || finishedSnapshot) this.finished = true;
    this.options.onEvent({ type: raw.type, data, id: raw.id });
  }
}
