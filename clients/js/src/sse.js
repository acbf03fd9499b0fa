// Server-Sent Events, parsed by the WHATWG rules ("Event stream interpretation").
//
// Fields, comments, multi-line data, `retry:` (ASCII digits only), ids (one
// with a NUL is ignored; an empty one resets), CR, LF and CR LF line ends even
// when a CR LF is split across two chunks, and a leading byte-order mark. A block
// without a `data:` line dispatches nothing but still moves the last event id.

/**
 * Incremental parser: push decoded text in chunks of any size.
 * @param {{onEvent: (event: {type: string, data: string, id: string}) => void,
 *          onRetry?: (ms: number) => void, lastEventId?: string}} options
 */
export function createSseParser({ onEvent, onRetry, lastEventId = "" }) {
  let pending = "";
  let trailingCr = false;
  let started = false;
  let data = [];
  let eventType = "";
  let idBuffer = lastEventId;

  const parser = {
    /** The id an EventSource would reconnect with. */
    lastEventId,
    push(text) {
      if (!text) return;
      if (!started) {
        started = true;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      if (trailingCr) {
        // The CR that ended the last chunk ended its line: a LF here is its other half.
        trailingCr = false;
        if (text[0] === "\n") text = text.slice(1);
      }
      if (text.includes("\r")) {
        trailingCr = text[text.length - 1] === "\r";
        text = text.replace(/\r\n?/g, "\n");
      }
      const lines = text.split("\n");
      lines[0] = pending + lines[0];
      pending = lines.pop();
      for (const line of lines) {
        if (line === "") dispatch();
        else if (line.charCodeAt(0) !== 58 /* ":" comment */) field(line);
      }
    },
  };

  function field(line) {
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (name === "data") data.push(value);
    else if (name === "event") eventType = value;
    else if (name === "id") {
      if (!value.includes("\0")) idBuffer = value;
    } else if (name === "retry" && /^[0-9]+$/.test(value)) onRetry?.(Number(value));
  }

  function dispatch() {
    parser.lastEventId = idBuffer;
    if (data.length === 0) {
      eventType = "";
      return;
    }
    const event = { type: eventType || "message", data: data.join("\n"), id: idBuffer };
    data = [];
    eventType = "";
    onEvent(event);
  }

  return parser;
}

/** A native id ("<ms>-<seq>", a Redis stream id) as two numbers, or null for another kind. */
export function eventIdKey(id) {
  const dash = id.indexOf("-");
  const ms = Number(dash === -1 ? id : id.slice(0, dash));
  const seq = dash === -1 ? 0 : Number(id.slice(dash + 1));
  return Number.isSafeInteger(ms) && Number.isSafeInteger(seq) && ms >= 0 && seq >= 0 ? [ms, seq] : null;
}

/** Orders native event ids numerically; other ids as strings. */
export function compareEventIds(a, b) {
  const ka = eventIdKey(String(a));
  const kb = eventIdKey(String(b));
  if (ka === null || kb === null) return a < b ? -1 : a > b ? 1 : 0;
  return Math.sign(ka[0] - kb[0] || ka[1] - kb[1]);
}
