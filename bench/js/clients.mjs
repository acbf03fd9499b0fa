// bench/clients.py's JavaScript side: events/s that one tokenrelay client and one
// `eventsource` (the npm package, the EventSource of Node) parse from one stream.
//   node bench/js/clients.mjs URL EVENTS RUNS
//   -> one JSON line: {name: [best events per wall-clock second, best events per CPU second]}
import { EventSource } from "eventsource";
import { TokenRelay } from "../../clients/js/src/index.js";

const [url, events, runs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] || 3)];
const base = new URL(url);

async function tokenrelayClient() {
  const tr = new TokenRelay({ baseUrl: base.origin });
  const id = base.pathname.split("/")[3];
  const s = tr.stream(id);
  let n = 0;
  for await (const ev of s) n += ev.type === "delta" ? 1 : 0;
  if (s.text.length === 0) throw new Error("no text");
  return n;
}

function eventsourcePackage() {
  return new Promise((resolve, reject) => {
    const source = new EventSource(url);
    let n = 0;
    let text = "";
    source.addEventListener("delta", (ev) => {
      text += JSON.parse(ev.data).text; // what a user does with it, as the client does
      n += 1;
    });
    source.addEventListener("done", () => {
      source.close();
      resolve(n);
    });
    source.onerror = (error) => {
      source.close();
      reject(error);
    };
  });
}

// The best of RUNS rounds, the two clients taking turns within each round.
const clients = [["tokenrelay-client (JS)", tokenrelayClient], ["eventsource 3 (npm)", eventsourcePackage]];
const results = Object.fromEntries(clients.map(([name]) => [name, [0, 0]]));
for (let i = 0; i < runs; i++) {
  for (const [name, run] of clients) {
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    const n = await run();
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuStarted);
    if (n !== events) throw new Error(`${name}: ${n} events, expected ${events}`);
    const [wall, perCpu] = results[name];
    results[name] = [Math.max(wall, n / seconds), Math.max(perCpu, n / ((cpu.user + cpu.system) / 1e6))];
  }
}
console.log(JSON.stringify(results));
