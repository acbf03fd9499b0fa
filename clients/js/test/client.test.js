// The client's reconnect policy against a scripted server that fails on cue: a
// response cut mid-stream, a refused connection, a 503, an early close each lead
// to a reconnect with Last-Event-ID; 401, 403, 404 and 429 do not (counted).
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  APIConnectionError,
  AuthenticationError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  TokenRelay,
} from "../src/index.js";
import { errorAnswer, eventStream, fakeServer, jsonAnswer, noContent, sse } from "./support/fake-server.js";

const FAST = { maxBackoffMs: 200, maxFailures: 5 };
const START = sse("start", { generation_id: "gen_x", model: "demo/echo", attempt: 1 }, "1-0");
const DONE = sse("done", { finish_reason: "stop", usage: null }, "4-0");
const delta = (text, id) => sse("delta", { text }, id);
const snapshot = (status, lastEventId) => ({ id: "gen_x", status, model: "m", content: "", attempt: 1, last_event_id: lastEventId });

async function collect(stream) {
  const kinds = [];
  for await (const event of stream) kinds.push(event.type);
  return kinds;
}

test("a cut stream, a refused connection, a 503 and a replayed event all resume exactly", async () => {
  const refuse = (req, res) => res.socket.destroy();
  const server = await fakeServer([
    eventStream("retry: 30\n\n" + START + delta("Hel", "2-0"), { cut: true }),
    refuse,
    errorAnswer(503, "unavailable", { "Retry-After": "0" }),
    eventStream(delta("Hel", "2-0") + delta("lo", "3-0")),
    eventStream(DONE),
  ]);
  try {
    const stream = new TokenRelay({ baseUrl: server.baseUrl, ...FAST }).stream("gen_x");
    assert.deepEqual(await collect(stream), ["start", "delta", "delta", "done"]);
    assert.equal(stream.text, "Hello");
    assert.equal(stream.status, "completed");
    assert.equal(stream.reconnects, 4);
    assert.deepEqual(
      server.requests.map((r) => r.headers["last-event-id"]),
      [undefined, "2-0", "2-0", "2-0", "3-0"],
    );
  } finally {
    await server.close();
  }
});

test("a reset voids the text; a resync replaces it", async () => {
  const body =
    START +
    delta("void", "2-0") +
    sse("reset", { attempt: 2, reason: "worker_lost" }, "3-0") +
    delta("kept", "3-2") +
    sse("resync", { ...snapshot("running", "5-0"), content: "stored text", attempt: 2 }, "5-0") +
    delta("!", "6-0") +
    DONE.replace("4-0", "7-0");
  const server = await fakeServer([eventStream(body)]);
  try {
    const stream = new TokenRelay({ baseUrl: server.baseUrl }).stream("gen_x");
    const texts = [];
    for await (const event of stream) texts.push([event.type, stream.text, stream.attempt]);
    assert.deepEqual(texts, [
      ["start", "", 1],
      ["delta", "void", 1],
      ["reset", "", 2],
      ["delta", "kept", 2],
      ["resync", "stored text", 2],
      ["delta", "stored text!", 2],
      ["done", "stored text!", 2],
    ]);
  } finally {
    await server.close();
  }
});

test("a 204 ends the stream cleanly and the status is read", async () => {
  const server = await fakeServer([noContent(), jsonAnswer(200, snapshot("completed", "4-0"))]);
  try {
    const stream = new TokenRelay({ baseUrl: server.baseUrl, token: "viewer" }).stream("gen_x", { lastEventId: "4-0" });
    assert.deepEqual(await collect(stream), []);
    assert.equal(stream.status, "completed");
    assert.deepEqual(server.requests.map((r) => r.url), ["/v1/generations/gen_x/events", "/v1/generations/gen_x"]);
    for (const request of server.requests) {
      assert.equal(request.headers.authorization, "Bearer viewer");
      assert.ok(!request.url.includes("viewer"), "a token never goes in a URL");
    }
  } finally {
    await server.close();
  }
});

for (const [status, type, ErrorClass] of [
  [401, "authentication_error", AuthenticationError],
  [403, "permission_error", PermissionDeniedError],
  [404, "not_found_error", NotFoundError],
  [429, "rate_limit_error", RateLimitError],
]) {
  test(`${status} is a ${ErrorClass.name} after one request, stream or not`, async () => {
    const server = await fakeServer([errorAnswer(status, type, { "Retry-After": "7" })]);
    try {
      const tr = new TokenRelay({ baseUrl: server.baseUrl, apiKey: "k", ...FAST });
      await assert.rejects(collect(tr.stream("gen_x")), (error) => error instanceof ErrorClass && error.type === type);
      assert.equal(server.requests.length, 1);
      await assert.rejects(tr.get("gen_x"), ErrorClass);
      assert.equal(server.requests.length, 2);
      assert.equal(server.requests[0].headers.authorization, "Bearer k");
      if (status === 429) await tr.get("gen_x").catch((error) => assert.equal(error.retryAfterS, 7));
    } finally {
      await server.close();
    }
  });
}

test("a 429 is waited out only when asked, and only maxRetries times", async () => {
  const limited = errorAnswer(429, "rate_limit_error", { "Retry-After": "0" });
  const server = await fakeServer([limited, limited, jsonAnswer(200, snapshot("running", "2-0"))]);
  try {
    const tr = new TokenRelay({ baseUrl: server.baseUrl, waitOnRateLimit: true });
    assert.equal((await tr.get("gen_x")).status, "running");
    assert.equal(server.requests.length, 3);
  } finally {
    await server.close();
  }
  const always = await fakeServer([limited]);
  try {
    const tr = new TokenRelay({ baseUrl: always.baseUrl, waitOnRateLimit: true, maxRetries: 3 });
    await assert.rejects(tr.get("gen_x"), RateLimitError);
    assert.equal(always.requests.length, 4);
  } finally {
    await always.close();
  }
});

test("gives up with APIConnectionError after maxFailures", async () => {
  const server = await fakeServer([noContent()]);
  await server.close(); // every connection is now refused
  const stream = new TokenRelay({ baseUrl: server.baseUrl, ...FAST }).stream("gen_x");
  await assert.rejects(collect(stream), (error) => error instanceof APIConnectionError && error.attempts === 5);
});

test("an AbortSignal stops the stream without an error, and the generation goes on", async () => {
  const server = await fakeServer([eventStream(START + delta("a", "2-0"), { cut: false })]);
  try {
    const controller = new AbortController();
    const stream = new TokenRelay({ baseUrl: server.baseUrl, ...FAST }).stream("gen_x", { signal: controller.signal });
    const kinds = [];
    for await (const event of stream) {
      kinds.push(event.type);
      if (event.type === "delta") controller.abort();
    }
    assert.deepEqual(kinds, ["start", "delta"]);
    assert.equal(stream.text, "a");
    assert.ok(server.requests.every((r) => r.method === "GET"), "closing never cancels");
  } finally {
    await server.close();
  }
});
