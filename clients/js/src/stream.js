// One generation's events as an async iterable, folded as they pass: `text` is the
// text of the current attempt (a `reset` voids what came before; a `resync`
// replaces it with the stored text), with `status`, `attempt`, `toolCalls`,
// `reconnects` and `reconnecting` alongside.

import { ResumableEventStream } from "./events.js";

const FINISHED = new Set(["completed", "failed", "cancelled"]);
const TERMINAL = new Set(["done", "error", "cancelled"]);

export class GenerationStream {
  /**
   * @param {string} url the events URL
   * @param {object} options ResumableEventStream options, plus `getStatus()` (a status read)
   */
  constructor(url, options = {}) {
    this.generationId = options.generationId || "";
    this.text = "";
    this.status = "queued";
    this.attempt = 0;
    this.toolCalls = [];
    this.finishReason = null;
    this.usage = null;
    this.error = null;
    this.reconnecting = false;
    this._queue = [];
    this._waiting = null;
    this._done = false;
    this._failure = null;
    this._started = false;
    this._told = false; // a terminal event or a status read said how it ended
    const { onState, getStatus } = options;
    this._events = new ResumableEventStream(url, {
      ...options,
      onEvent: (event) => this._push(event),
      onState: (state, info) => {
        this.reconnecting = state === "dropped" || (state === "connecting" && info.resuming);
        if (state === "open" || state === "closed" || state === "failed") this.reconnecting = false;
        onState?.(state, info);
        this._wake();
      },
      onEmptyClose: getStatus
        ? async () => {
            const snapshot = await getStatus();
            if (!FINISHED.has(snapshot.status) || (snapshot.last_event_id || "") !== this._events.lastEventId) return false;
            this._settle(snapshot);
            return true;
          }
        : undefined,
    });
    this._getStatus = getStatus;
  }

  get reconnects() {
    return this._events.reconnects;
  }

  get lastEventId() {
    return this._events.lastEventId;
  }

  get finished() {
    return this._events.finished;
  }

  /** Stops reading (the generation goes on; resume later from `lastEventId`). */
  close() {
    this._events.close();
    this._done = true;
    this._wake();
  }

  /** Reads to the end; resolves to this stream. */
  async untilDone() {
    for await (const _ of this) {
      /* folded as they pass */
    }
    return this;
  }

  [Symbol.asyncIterator]() {
    this._start();
    return {
      next: () => this._next(),
      return: async () => {
        this.close();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  _start() {
    if (this._started) return;
    this._started = true;
    this._events
      .run()
      .then(async () => {
        // A 204: the stream is over; read how it ended if the events did not say.
        if (this._events.finished && !this._told && this._getStatus) {
          try {
            this._settle(await this._getStatus());
          } catch (error) {
            this._failure = error;
          }
        }
      })
      .catch((error) => {
        this._failure = error;
      })
      .finally(() => {
        this._done = true;
        this._wake();
      });
  }

  async _next() {
    for (;;) {
      if (this._queue.length > 0) {
        // Folded as the consumer takes it, so `text` goes with the event in hand.
        const event = this._queue.shift();
        this._apply(event);
        return { value: event, done: false };
      }
      if (this._failure) {
        const failure = this._failure;
        this._failure = null;
        this._done = true;
        throw failure;
      }
      if (this._done) return { value: undefined, done: true };
      await new Promise((resolve) => { this._waiting = resolve; });
    }
  }

  _wake() {
    const resolve = this._waiting;
    this._waiting = null;
    resolve?.();
  }

  _push(event) {
    if (TERMINAL.has(event.type)) this._told = true;
    this._queue.push(event);
    this._wake();
  }

  _apply({ type, data }) {
    switch (type) {
      case "start":
        this.status = "running";
        this.attempt = data.attempt ?? this.attempt;
        break;
      case "delta":
        this.status = "running";
        if (typeof data.text === "string") this.text += data.text;
        else if (data.tool_call) {
          const { index = 0, id, name, arguments: args } = data.tool_call;
          while (this.toolCalls.length <= index) this.toolCalls.push({ id: null, name: null, arguments: "" });
          const call = this.toolCalls[index];
          if (id) call.id = id;
          if (name) call.name = name;
          call.arguments += args || "";
        }
        break;
      case "reset":
        this.text = "";
        this.toolCalls = [];
        this.attempt = data.attempt ?? this.attempt + 1;
        break;
      case "done":
        this.status = "completed";
        this.finishReason = data.finish_reason ?? null;
        this.usage = data.usage ?? null;
        break;
      case "error":
        this.status = "failed";
        this.error = { type: data.type, message: data.message, retryable: data.retryable };
        break;
      case "cancelled":
        this.status = "cancelled";
        break;
      case "resync":
        this._settle(data);
        this.text = data.content ?? "";
        this.toolCalls = (data.tool_calls || []).map((call) => ({ ...call }));
        break;
      default:
        break;
    }
  }

  _settle(snapshot) {
    this._told = true;
    this.status = snapshot.status;
    this.attempt = snapshot.attempt ?? this.attempt;
    this.finishReason = snapshot.finish_reason ?? null;
    this.usage = snapshot.usage ?? null;
    this.error = snapshot.error ?? null;
  }
}
