// What a viewer knows about one generation, rebuilt from its events.
//
// The chat and watch pages both fold the native event stream into this state,
// so a late joiner replaying from the first event and a live viewer end with the
// same text. Timings come from the event ids: a native id is the Redis stream id
// "<server ms>-<seq>", so time to first token and tokens per second are the
// server's figures, the same for a late joiner as for someone who watched live.

export const FINISHED = new Set(["completed", "failed", "cancelled"]);

export function eventTimeMs(id) {
  const ms = Number(String(id || "").split("-")[0]);
  return Number.isFinite(ms) && ms > 0 ? ms : null;
}

export function newGeneration({ id, model = "", status = "queued", createdAt = null } = {}) {
  return {
    id,
    model,
    status,
    attempt: 0,
    text: "",
    toolCalls: [],
    finishReason: null,
    usage: null,
    error: null,
    createdAt, // seconds, from the API
    firstTokenMs: null, // first text of the whole generation (what a user waits for)
    attemptFirstMs: null, // first and last text of the current attempt (for tokens/s)
    lastTokenMs: null,
    wordCount: 0, // live estimate of tokens until `done` brings the provider's usage
    lastCharWasSpace: true,
    discarded: [], // [{attempt, reason, text}] voided by `reset`
    viewers: 0,
  };
}

function countWords(gen, text) {
  for (const ch of text) {
    const space = /\s/.test(ch);
    if (!space && gen.lastCharWasSpace) gen.wordCount += 1;
    gen.lastCharWasSpace = space;
  }
}

/** Applies one native event; returns what changed: "text", "reset", "status" or "meta". */
export function applyEvent(gen, { type, data, id }) {
  const at = eventTimeMs(id);
  switch (type) {
    case "start":
      gen.status = "running";
      gen.attempt = data.attempt ?? gen.attempt;
      gen.model = data.model || gen.model;
      return "status";
    case "delta":
      if (typeof data.text === "string") {
        gen.status = "running";
        gen.text += data.text;
        countWords(gen, data.text);
        if (at !== null && data.text.length > 0) {
          gen.firstTokenMs ??= at;
          gen.attemptFirstMs ??= at;
          gen.lastTokenMs = at;
        }
        return "text";
      }
      if (data.tool_call) {
        const { index, id: callId, name, arguments: args } = data.tool_call;
        const call = (gen.toolCalls[index] ??= { id: null, name: null, arguments: "" });
        if (callId) call.id = callId;
        if (name) call.name = name;
        call.arguments += args || "";
        return "text";
      }
      return "meta";
    case "reset":
      gen.discarded.push({ attempt: gen.attempt, reason: data.reason, text: gen.text });
      gen.text = "";
      gen.toolCalls = [];
      gen.attempt = data.attempt ?? gen.attempt + 1;
      gen.attemptFirstMs = null;
      gen.lastTokenMs = null;
      gen.wordCount = 0;
      gen.lastCharWasSpace = true;
      return "reset";
    case "done":
      gen.status = "completed";
      gen.finishReason = data.finish_reason;
      gen.usage = data.usage || null;
      return "status";
    case "error":
      gen.status = "failed";
      gen.error = { type: data.type, message: data.message, retryable: data.retryable };
      return "status";
    case "cancelled":
      gen.status = "cancelled";
      return "status";
    case "resync":
      applySnapshot(gen, data);
      return "reset";
    default:
      return "meta";
  }
}

/** Rebuilds from `GET /v1/generations/{id}` (or a `resync` event, which carries the same). */
export function applySnapshot(gen, snap) {
  gen.status = snap.status;
  gen.model = snap.model || gen.model;
  gen.attempt = snap.attempt ?? gen.attempt;
  gen.text = snap.content ?? "";
  gen.toolCalls = (snap.tool_calls || []).map((c) => ({ ...c }));
  gen.finishReason = snap.finish_reason ?? null;
  gen.usage = snap.usage ?? null;
  gen.error = snap.error ?? null;
  gen.createdAt = snap.created_at ?? gen.createdAt;
  if (typeof snap.viewers === "number") gen.viewers = snap.viewers;
  gen.wordCount = 0;
  gen.lastCharWasSpace = true;
  countWords(gen, gen.text);
}

/** Figures for display: TTFT (ms), tokens (exact once done), tokens/s. */
export function stats(gen) {
  const tokens = gen.usage?.output_tokens ?? gen.wordCount;
  const exact = gen.usage?.output_tokens != null;
  const ttftMs =
    gen.firstTokenMs !== null && gen.createdAt ? Math.max(0, gen.firstTokenMs - gen.createdAt * 1000) : null;
  let tokensPerS = null;
  if (gen.attemptFirstMs !== null && gen.lastTokenMs !== null) {
    const spanS = (gen.lastTokenMs - gen.attemptFirstMs) / 1000;
    if (spanS >= 0.2 && tokens > 1) tokensPerS = (tokens - 1) / spanS;
  }
  return { tokens, exact, ttftMs, tokensPerS };
}
