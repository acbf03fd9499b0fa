// The watch page: one generation, live, for anyone who has the link.
//
// A late joiner replays the stream from its first event and then follows it
// live, so everyone ends with the same text. Drops are shown, not hidden: the
// page says when the connection was lost and when it resumed, and from which
// event. The number of people watching is read every few seconds while the
// generation runs.

import { apiRequest, followGeneration } from "./api.js";
import { FINISHED, applyEvent, newGeneration, stats } from "./generation.js";
import { AnswerView, el, formatMs, formatRate, setupPage, statusPill, throttled, watchUrl } from "./ui.js";

const VIEWERS_POLL_MS = 3000;
const $ = (id) => document.getElementById(id);

const genId = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const gen = newGeneration({ id: genId });
const view = new AnswerView($("answer"));

// Exposed for debugging and for the browser tests.
window.tokenrelay = { generation: gen, notices: [] };

function notice(kind, text) {
  const time = new Date().toLocaleTimeString();
  window.tokenrelay.notices.push({ kind, text });
  $("notices").append(
    el("li", { class: `notice notice-${kind}`, dataset: { kind } }, el("time", {}, time), el("span", {}, text)),
  );
}

function setConnection(state, text) {
  $("conn").dataset.state = state;
  $("conn-text").textContent = text;
}

function renderStats() {
  const figures = stats(gen);
  $("stat-status").replaceChildren(statusPill(gen.status));
  $("stat-model").textContent = gen.model || "—";
  $("stat-viewers").textContent = String(gen.viewers || (FINISHED.has(gen.status) ? 0 : 1));
  $("stat-ttft").textContent = formatMs(figures.ttftMs);
  $("stat-tps").textContent = formatRate(figures.tokensPerS);
  $("stat-tokens").textContent = figures.tokens ? `${figures.exact ? "" : "≈"}${figures.tokens}` : "—";
  $("stat-attempt").textContent = gen.attempt ? String(gen.attempt) : "—";
  document.title = `${gen.status === "running" ? "● " : ""}tokenrelay · ${gen.model || "Watch"}`;
}

const updateStats = throttled(() => renderStats(), 200);

async function refreshStatus() {
  try {
    const snap = await apiRequest(`/v1/generations/${encodeURIComponent(genId)}`);
    if (typeof snap.viewers === "number") gen.viewers = snap.viewers;
    gen.createdAt = snap.created_at;
    gen.model ||= snap.model;
    renderStats();
    return snap;
  } catch (error) {
    return { error };
  }
}

/** Viewer count, from the listing (which never sends the text), while the generation runs. */
async function pollViewers() {
  while (!FINISHED.has(gen.status)) {
    await new Promise((resolve) => setTimeout(resolve, VIEWERS_POLL_MS));
    if (document.hidden) continue;
    try {
      const list = await apiRequest(`/v1/generations?id=${encodeURIComponent(genId)}`);
      const row = list.data[0];
      if (row && typeof row.viewers === "number") {
        gen.viewers = row.viewers;
        renderStats();
      }
    } catch {
      // the stream shows connection trouble; the count just waits for the next poll
    }
  }
}

async function main() {
  setupPage();
  $("title").textContent = genId || "(no id)";
  $("share-url").value = watchUrl(genId);
  $("share-copy").dataset.copy = watchUrl(genId);
  const first = await refreshStatus();
  if (first.error) {
    const gone = first.error.status === 404;
    setConnection("ended", gone ? "Not found" : "Unavailable");
    gen.status = "failed";
    gen.error = { type: first.error.type, message: first.error.message };
    view.renderNow(gen);
    renderStats();
    notice("error", gone ? "This generation does not exist, or it expired after its retention period." : first.error.message);
    return;
  }
  if (first.status !== "queued") notice("info", FINISHED.has(first.status) ? "Replaying the finished generation from its first event." : "Joined while it runs: replaying from the first event, then live.");
  renderStats();
  pollViewers();
  let dropped = false;
  const stream = followGeneration(genId, {
    onEvent: (event) => {
      const change = applyEvent(gen, event);
      view.update(gen, change);
      if (change === "reset") {
        if (event.type === "resync") notice("warn", "Part of the stream had expired; rebuilt from the stored text.");
        else notice("warn", `Attempt ${gen.discarded.at(-1).attempt} was discarded (${String(event.data.reason).replaceAll("_", " ")}); the text restarts from the beginning.`);
      }
      if (change === "status" && event.type === "cancelled") notice("warn", "The generation was cancelled.");
      if (change === "status" && event.type === "error") notice("error", `The generation failed: ${event.data.message}`);
      updateStats(change !== "text");
    },
    onState: (state, info) => {
      if (state === "connecting") setConnection("connecting", info.resuming ? "Reconnecting…" : "Connecting…");
      else if (state === "open") {
        setConnection("live", "Live");
        if (info.resumed || dropped) {
          notice("ok", info.lastEventId ? `Reconnected: resumed after event ${info.lastEventId}, nothing missed.` : "Reconnected.");
        }
        dropped = false;
      } else if (state === "dropped") {
        setConnection("dropped", "Reconnecting…");
        if (!dropped) notice("warn", `Connection lost (${info.reason}); reconnecting in ${formatMs(info.retryInMs)}…`);
        dropped = true;
      } else if (state === "closed") setConnection("ended", "Ended");
      else if (state === "failed") {
        setConnection("ended", "Stopped");
        notice("error", `The stream cannot continue: ${info.error?.message || "unknown error"}`);
      }
    },
  });
  await stream.done;
  view.renderNow(gen);
  await refreshStatus();
  renderStats();
}

main();
