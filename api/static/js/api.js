// Calls to the tokenrelay API from the browser, with the API key when one is needed.
//
// The key is asked for once, when the API first answers 401, and kept in
// sessionStorage: it lasts for this tab's session and is sent only in the
// `Authorization` header, never in a URL (URLs end up in logs, history and
// Referer headers). Event streams go through `ResumableEventStream` of the
// tokenrelay client (./tokenrelay/, the npm package's own source), which uses
// fetch() for the same reason: EventSource cannot send headers.

import { HttpError, ResumableEventStream } from "./sse.js";

const KEY_STORAGE = "tokenrelay.apiKey";

export function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  document.dispatchEvent(new CustomEvent("tokenrelay:key"));
}

export function authHeaders() {
  const key = storedKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

let pendingKeyRequest = null;

/** Shows the key dialog (once, however many calls are waiting) and resolves when a key is saved. */
export function askForKey(message) {
  pendingKeyRequest ??= new Promise((resolve, reject) => {
    const dialog = document.getElementById("key-dialog");
    const form = dialog.querySelector("form");
    const input = dialog.querySelector("input[name=key]");
    const note = dialog.querySelector("[data-role=key-message]");
    note.textContent = storedKey() ? `That key was not accepted: ${message}` : "This tokenrelay needs an API key.";
    input.value = "";
    const finish = (ok) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      pendingKeyRequest = null;
      ok ? resolve() : reject(new HttpError(401, "authentication_error", message));
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      document.dispatchEvent(new CustomEvent("tokenrelay:key"));
      finish(true);
    };
    const onCancel = (event) => {
      event.preventDefault();
      finish(false);
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
    dialog.querySelector("[data-role=key-cancel]").onclick = () => finish(false);
    dialog.showModal();
    input.focus();
  });
  return pendingKeyRequest;
}

/** JSON request to the API; asks for a key on 401 and retries; throws HttpError otherwise. */
export async function apiRequest(path, { method = "GET", body, signal } = {}) {
  for (;;) {
    const headers = { Accept: "application/json", ...authHeaders() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new HttpError(0, "network_error", "cannot reach the tokenrelay API");
    }
    const payload = await response.json().catch(() => null);
    if (response.ok) return payload;
    const type = payload?.error?.type || "api_error";
    const message = payload?.error?.message || `HTTP ${response.status}`;
    if (response.status === 401) {
      await askForKey(message);
      continue;
    }
    throw new HttpError(response.status, type, message);
  }
}

/**
 * Follows a generation's native event stream, resuming across drops (for as long
 * as the page is open: a 429 is waited out, and failures never make it give up).
 * `done` resolves when it ends; a failure is reported through onState("failed").
 */
export function followGeneration(genId, { onEvent, onState, lastEventId, stallMs }) {
  const stream = new ResumableEventStream(`/v1/generations/${encodeURIComponent(genId)}/events`, {
    headers: authHeaders,
    onEvent,
    onState,
    lastEventId,
    stallMs,
    waitOnRateLimit: true,
    onUnauthorized: (error) => askForKey(error.message),
  });
  stream.done = stream.run().catch(() => {});
  return stream;
}
