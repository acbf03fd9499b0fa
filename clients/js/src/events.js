// A resumable Server-Sent Events reader on fetch(): the loop every client needs, once.
//
// Why not EventSource: it cannot send an Authorization header, and a key must
// never travel in a URL (URLs end up in logs, history and Referer headers). This
// reader keeps EventSource's semantics instead: it parses by the WHATWG rules,
// remembers the last event id, and on any drop (network error, a replica killed
// or draining, a laptop waking from sleep) reconnects with `Last-Event-ID`,
// waiting the server's `retry:` first. Failures in a row back off (doubling,
// capped, with jitter so a fleet of viewers does not return in lockstep; never
// below `retry:` or `Retry-After`), and a stream that goes silent for longer
// than a few heartbeats is presumed dead and reopened. Events whose id is not
// after the last one seen are dropped, so text is never applied twice.
//
// It ends at a terminal event (`done`, `error`, `cancelled`) or a `204 No
// Content`. Answers that asking again cannot change (400, 401, 403, 404) end it
// with their typed error; a 429 too, unless `waitOnRateLimit` is set; 5xx and
// every transport failure are retried. In a browser it also reconnects at once
// when the network comes back or the tab becomes visible.
//
// The tokenrelay web pages use this same module (the API serves clients/js/src
// under /static/js/tokenrelay/): one implementation of the loop, not two.

import { createSseParser, eventIdKey } from "./sse.js";
import { APIConnectionError, AuthenticationError, RateLimitError, errorFromResponse } from "./errors.js";

const TERMINAL = new Set(["done", "error", "cancelled"]);

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/**
 * Follows one event stream until a terminal event, across any number of drops.
 *
 * options:
 *   headers():            request headers (the key), read on every (re)connect
 *   onEvent(event):       {type, data (parsed JSON), id}
 *   onState(state, info): "connecting" | "open" | "dropped" | "closed" | "failed"
 *   onUnauthorized(err):  resolve to retry (e.g. after asking for a key), reject to stop
 *   onEmptyClose():       after a connection that closed with no event: resolve true
 *                         if the stream is over (e.g. a status read says it finished)
 *   lastEventId:          resume after this id
 *   stallMs:              reopen a stream that sent nothing, not even a ping, this long
 *   maxBackoffMs:         cap of the doubling wait (10 s)
 *   maxFailures:          give up after this many failures in a row (Infinity)
 *   waitOnRateLimit:      wait out a 429's Retry-After instead of failing
 *   signal:               an AbortSignal that stops it (never an error)
 *   fetch:                the fetch to use (default: globalThis.fetch)
 */
export class ResumableEventStream {
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    this.lastEventId = options.lastEventId || "";
    this.retryMs = 1000;
    this.failures = 0;
    this.connections = 0;
    this.reconnects = 0;
    this.finished = false;
    this.error = null;
    this.stallMs = options.stallMs ?? 45000;
    this.maxBackoffMs = options.maxBackoffMs ?? 10000;
    this.maxFailures = options.maxFailures ?? Infinity;
    this.stopped = new AbortController();
    this.wake = null;
    this._resynced = false;
    this._lastKey = this.lastEventId ? eventIdKey(this.lastEventId) : null;
    this._onWake = () => this.wake?.();
    if (options.signal) {
      if (options.signal.aborted) this.stopped.abort();
      else options.signal.addEventListener("abort", () => this.close(), { once: true });
    }
    if (typeof window !== "undefined" && window.addEventListener) {
      window.addEventListener("online", this._onWake);
      globalThis.document?.addEventListener("visibilitychange", this._onWake);
    }
  }

  /** Runs until the stream ends, fails for good (rejects with the error), or close(). */
  async run() {
    try {
      while (!this.finished && !this.stopped.signal.aborted) {
        const outcome = await this._connectOnce();
        if (outcome.end || this.stopped.signal.aborted) break;
        this.failures += 1;
        if (this.failures >= this.maxFailures) {
          this.error = new APIConnectionError(`gave up after ${this.failures} failed connections: ${outcome.reason}`, {
            attempts: this.failures,
          });
          this._state("failed", { error: this.error });
          break;
        }
        const delay = this._delay(outcome.retryAfterS);
        this._state("dropped", { retryInMs: delay, reason: outcome.reason, lastEventId: this.lastEventId });
        await this._waitBeforeRetry(delay);
        this.reconnects += 1;
      }
    } finally {
      this._detach();
    }
    if (this.error) throw this.error;
  }

  close() {
    this.stopped.abort();
    this.wake?.();
    this._detach();
  }

  _detach() {
    if (typeof window !== "undefined" && window.removeEventListener) {
      window.removeEventListener("online", this._onWake);
      globalThis.document?.removeEventListener("visibilitychange", this._onWake);
    }
  }

  _state(state, info = {}) {
    this.options.onState?.(state, info);
  }

  _delay(retryAfterS) {
    const base = Math.max(this.retryMs, 1);
    let wait = Math.max(base, Math.min(this.maxBackoffMs, base * 2 ** Math.max(0, this.failures - 1)));
    if (retryAfterS != null) wait = Math.max(wait, retryAfterS * 1000);
    return Math.round(wait * (1 + Math.random() * 0.25));
  }

  async _waitBeforeRetry(delay) {
    const woken = new Promise((resolve) => { this.wake = resolve; });
    await Promise.race([sleep(delay, this.stopped.signal), woken]);
    this.wake = null;
  }

  _fail(error) {
    this.error = error;
    this._state("failed", { error });
    return { end: true };
  }

  /** One HTTP request: {end: true} when over, else {reason, retryAfterS} to retry. */
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
      const doFetch = this.options.fetch || globalThis.fetch;
      const response = await doFetch(this.url, { headers, signal: attempt.signal, cache: "no-store" });
      if (response.status === 204) {
        this.finished = true;
        this._state("closed", { lastEventId: this.lastEventId, noContent: true });
        return { end: true };
      }
      if (!response.ok) return await this._refused(response);
      opened = true;
      this.connections += 1;
      this._state("open", { resumed: this.connections > 1, lastEventId: this.lastEventId });
      let received = 0;
      const parser = createSseParser({
        lastEventId: this.lastEventId,
        onRetry: (ms) => { this.retryMs = ms; },
        onEvent: (raw) => {
          if (this._deliver(raw)) received += 1;
        },
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      while (!this.finished) {
        const { value, done } = await reader.read();
        if (done) break;
        armStallTimer();
        parser.push(value);
        this.lastEventId = parser.lastEventId;
      }
      if (this.finished) {
        reader.cancel().catch(() => {});
        this._state("closed", { lastEventId: this.lastEventId });
        return { end: true };
      }
      if (received === 0 && this.options.onEmptyClose && (await this.options.onEmptyClose())) {
        this.finished = true;
        this._state("closed", { lastEventId: this.lastEventId });
        return { end: true };
      }
      return { reason: "the server closed the stream before the end" };
    } catch (error) {
      if (this.stopped.signal.aborted) return { end: true };
      if (error?.status) return this._fail(error); // a typed error from onEmptyClose
      if (attempt.signal.aborted) return { reason: "no data for too long" };
      return { reason: opened ? "the connection broke" : "the server could not be reached" };
    } finally {
      clearTimeout(stallTimer);
      this.stopped.signal.removeEventListener("abort", onStop);
    }
  }

  async _refused(response) {
    const error = await errorFromResponse(response);
    if (error instanceof AuthenticationError && this.options.onUnauthorized) {
      try {
        await this.options.onUnauthorized(error);
        return { reason: "retry with a new key", retryAfterS: 0 };
      } catch {
        return this._fail(error);
      }
    }
    const retryable = response.status >= 500 || (error instanceof RateLimitError && this.options.waitOnRateLimit);
    if (retryable) return { reason: `server answered ${response.status}`, retryAfterS: error.retryAfterS };
    return this._fail(error);
  }

  /** Hands one event on; false for one already seen. */
  _deliver(raw) {
    if (raw.id) {
      const key = eventIdKey(raw.id);
      const last = this._lastKey;
      if (key && last) {
        const order = key[0] - last[0] || key[1] - last[1];
        // A finished generation's `resync` carries the id of its terminal event,
        // which the server sends next: that one repeat is expected.
        if (order < 0 || (order === 0 && !this._resynced)) return false;
      }
      this._lastKey = key;
    }
    this._resynced = raw.type === "resync";
    let data = null;
    try {
      data = JSON.parse(raw.data);
    } catch {
      data = { raw: raw.data };
    }
    if (raw.id) this.lastEventId = raw.id;
    this.failures = 0;
    if (TERMINAL.has(raw.type)) this.finished = true;
    this.options.onEvent?.({ type: raw.type, data, id: raw.id });
    return true;
  }
}
