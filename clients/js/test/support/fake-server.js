// A scripted HTTP server on a real socket, the upstream a client test needs to fail
// on cue: each request gets the next answer of the script (the last one repeats),
// and every request is recorded so that a test can count them.
import http from "node:http";

export async function fakeServer(script) {
  const requests = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method, url: req.url, headers: req.headers });
    const answer = script[Math.min(requests.length, script.length) - 1];
    answer(req, res);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export const sse = (event, data, id) => `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/** An event stream; with `cut`, the socket is destroyed mid-response (no terminal chunk). */
export function eventStream(body, { cut = false } = {}) {
  return (req, res) => {
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    res.write(body);
    if (cut) setTimeout(() => res.socket.destroy(), 20);
    else res.end();
  };
}

export function jsonAnswer(status, body, headers = {}) {
  return (req, res) => {
    res.writeHead(status, { "Content-Type": "application/json", ...headers });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };
}

export function errorAnswer(status, type, headers = {}) {
  return jsonAnswer(status, { error: { type, message: "said the fake" } }, headers);
}

export function noContent() {
  return (req, res) => {
    res.writeHead(204);
    res.end();
  };
}
