// The parser against the WHATWG event-stream rules, fed in chunks of every size.
import assert from "node:assert/strict";
import { test } from "node:test";
import { compareEventIds, createSseParser } from "../src/sse.js";

function parse(text, chunk, lastEventId = "") {
  const events = [];
  const retries = [];
  const parser = createSseParser({ onEvent: (e) => events.push(e), onRetry: (ms) => retries.push(ms), lastEventId });
  for (let i = 0; i < text.length; i += chunk) parser.push(text.slice(i, i + chunk));
  return { events, retries, parser };
}

for (const chunk of [1, 2, 3, 7, 1000]) {
  test(`fields, comments and every line end (chunks of ${chunk})`, () => {
    const stream =
      "\ufeffretry: 1500\n\n: ping\n\n" +
      'id: 1-0\nevent: delta\ndata: {"text":"a"}\n\n' +
      "id: 1-1\r\nevent: delta\r\ndata: line one\r\ndata:line two\r\n\r\n" +
      "id: 1-2\revent: done\rdata\r\r" +
      "id: 1-3\ndata: incomplete at the end";
    const { events, retries, parser } = parse(stream, chunk);
    assert.deepEqual(events, [
      { type: "delta", data: '{"text":"a"}', id: "1-0" },
      { type: "delta", data: "line one\nline two", id: "1-1" },
      { type: "done", data: "", id: "1-2" },
    ]);
    assert.deepEqual(retries, [1500]);
    assert.equal(parser.lastEventId, "1-2");
  });
}

test("id rules, no data no dispatch, retry of ASCII digits only", () => {
  const stream =
    "id: 5-0\n\n" +
    "data: x\nid: bad\0id\n\n" +
    "retry: -5\n\nretry: +5\n\nretry: 5s\n\nretry: 2\u00b3\n\n" +
    "data\n\n" +
    "id\ndata: y\n\n" +
    "event:\ndata:z\n\n";
  for (const chunk of [1, 4, 1000]) {
    const { events, retries, parser } = parse(stream, chunk, "1-0");
    assert.deepEqual(events, [
      { type: "message", data: "x", id: "5-0" },
      { type: "message", data: "", id: "5-0" },
      { type: "message", data: "y", id: "" },
      { type: "message", data: "z", id: "" },
    ]);
    assert.deepEqual(retries, []);
    assert.equal(parser.lastEventId, "");
  }
});

test("a CR ending one chunk and a LF starting the next are one line end", () => {
  const events = [];
  const parser = createSseParser({ onEvent: (e) => events.push(e) });
  parser.push("data: a\r");
  assert.equal(events.length, 0);
  parser.push("\n\r");
  parser.push("\ndata: b\n\n");
  assert.deepEqual(events.map((e) => e.data), ["a", "b"]);
});

test("native ids order numerically", () => {
  assert.ok(compareEventIds("9-0", "10-0") < 0);
  assert.ok(compareEventIds("10-2", "10-10") < 0);
  assert.equal(compareEventIds("10-1", "10-1"), 0);
  assert.ok(compareEventIds("11-0", "10-99") > 0);
});
