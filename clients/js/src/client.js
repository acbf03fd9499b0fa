// The tokenrelay API from JavaScript: browsers and Node >= 18, on fetch, no dependencies.
//
// The key (or a viewer token) goes in the Authorization header, never in a URL.
// Plain requests are retried only where that cannot do harm: a GET that could
// not reach the server or met a 5xx, and a 503 (the server's own "try again").
// A 429 raises RateLimitError unless `waitOnRateLimit` is set.

import { APIConnectionError, RateLimitError, errorFromResponse } from "./errors.js";
import { GenerationStream } from "./stream.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class TokenRelay {
  /**
   * @param {{baseUrl?: string, apiKey?: string, token?: string, fetch?: typeof fetch,
   *          maxRetries?: number, waitOnRateLimit?: boolean, maxBackoffMs?: number,
   *          maxFailures?: number, stallMs?: number}} [options]
   */
  constructor(options = {}) {
    if (options.apiKey && options.token) throw new TypeError("pass apiKey or token, not both");
    const origin = typeof location !== "undefined" ? location.origin : "http://127.0.0.1:8000";
    this.baseUrl = String(options.baseUrl ?? origin).replace(/\/+$/, "");
    this.credential = options.apiKey || options.token || "";
    this.fetch = options.fetch || ((...args) => globalThis.fetch(...args));
    this.maxRetries = options.maxRetries ?? 2;
    this.waitOnRateLimit = options.waitOnRateLimit ?? false;
    this.streamOptions = {
      maxBackoffMs: options.maxBackoffMs ?? 10000,
      maxFailures: options.maxFailures ?? 50,
      stallMs: options.stallMs ?? 60000,
    };
  }

  headers() {
    return this.credential ? { Authorization: `Bearer ${this.credential}` } : {};
  }

  /** JSON request; throws a typed APIError or APIConnectionError. */
  async request(method, path, { body, signal } = {}) {
    for (let tries = 0; ; tries++) {
      const headers = { Accept: "application/json", ...this.headers() };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      let response;
      try {
        response = await this.fetch(`${this.baseUrl}${path}`, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
          cache: "no-store",
        });
      } catch (error) {
        if (signal?.aborted) throw error;
        if (method !== "GET" || tries >= this.maxRetries) {
          throw new APIConnectionError(`cannot reach ${this.baseUrl}: ${error?.message || error}`, {
            attempts: tries + 1,
            cause: error,
          });
        }
        await sleep(500 * 2 ** tries);
        continue;
      }
      if (response.ok) return response.status === 204 ? null : response.json();
      const error = await errorFromResponse(response);
      const retryable =
        response.status === 503 ||
        (response.status >= 500 && method === "GET") ||
        (error instanceof RateLimitError && this.waitOnRateLimit);
      if (!retryable || tries >= this.maxRetries) throw error;
      await sleep(error.retryAfterS != null ? error.retryAfterS * 1000 : 500 * 2 ** tries);
    }
  }

  /** Queues a generation: {model, messages, max_tokens?, temperature?, tools?, metadata?}. */
  create(body, { signal } = {}) {
    return this.request("POST", "/v1/generations", { body, signal });
  }

  get(id, { signal } = {}) {
    return this.request("GET", genPath(id), { signal });
  }

  cancel(id, { signal } = {}) {
    return this.request("POST", genPath(id, "/cancel"), { signal });
  }

  list({ limit, status = [], ids = [], signal } = {}) {
    const params = new URLSearchParams();
    if (limit != null) params.set("limit", String(limit));
    for (const s of status) params.append("status", s);
    for (const id of ids) params.append("id", id);
    const query = params.toString();
    return this.request("GET", `/v1/generations${query ? `?${query}` : ""}`, { signal });
  }

  viewerToken(id, { ttlS, signal } = {}) {
    return this.request("POST", genPath(id, "/viewer-tokens"), { body: ttlS == null ? {} : { ttl_s: ttlS }, signal });
  }

  /**
   * A generation's events that resume by themselves: `for await (const ev of s)`,
   * then `s.text`, `s.status`. Options: lastEventId, signal, onState.
   */
  stream(id, options = {}) {
    return new GenerationStream(`${this.baseUrl}${genPath(id, "/events")}`, {
      ...this.streamOptions,
      waitOnRateLimit: this.waitOnRateLimit,
      fetch: this.fetch,
      headers: () => this.headers(),
      getStatus: () => this.get(id),
      generationId: id,
      ...options,
    });
  }
}

function genPath(id, suffix = "") {
  if (!id || String(id).includes("/")) throw new TypeError(`not a generation id: ${id}`);
  return `/v1/generations/${encodeURIComponent(id)}${suffix}`;
}
