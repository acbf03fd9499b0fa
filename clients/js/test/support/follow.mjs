// Follows one generation with the client, as a user's Node program would, and
// reports on stdout, one JSON line each: every event as it arrives, then the
// outcome. The Python tests run it against real API processes and kill them.
//   node follow.mjs BASE_URL GENERATION_ID [API_KEY]
import { TokenRelay } from "../../src/index.js";

const [baseUrl, id, apiKey] = process.argv.slice(2);
const tr = new TokenRelay({ baseUrl, apiKey, maxBackoffMs: 1000 });
const stream = tr.stream(id);
const ids = [];
try {
  for await (const event of stream) {
    ids.push(event.id);
    console.log(JSON.stringify({ event: event.type, id: event.id, length: stream.text.length, attempt: stream.attempt }));
  }
  console.log(JSON.stringify({
    final: true,
    text: stream.text,
    status: stream.status,
    attempt: stream.attempt,
    reconnects: stream.reconnects,
    duplicates: ids.length - new Set(ids).size,
  }));
} catch (error) {
  const { name, status = null, type = null } = error;
  console.log(JSON.stringify({ final: true, error: name, status, type, reconnects: stream.reconnects }));
  process.exitCode = 1;
}
