// The chat page: pick a model, send, watch the answer stream, stop it, go on.
//
// The conversation lives in this tab's sessionStorage, so a reload keeps it, and
// an answer that was still streaming is followed again from its first event.
// Each request sends the whole history (user turns and the text of earlier
// answers, a stopped answer's partial text included, a failed one's not), as
// chat APIs expect.

import { apiRequest, followGeneration } from "./api.js";
import { FINISHED, applyEvent, newGeneration, stats } from "./generation.js";
import { AnswerView, el, formatMs, formatRate, setupPage, statusPill, throttled, watchUrl } from "./ui.js";

const STORE = "tokenrelay.chat";
const MODEL_STORE = "tokenrelay.model";

const $ = (id) => document.getElementById(id);
const messagesEl = $("messages");
const promptEl = $("prompt");
const modelEl = $("model");
const sendEl = $("send");
const stopEl = $("stop");

// Exposed for debugging and for the browser tests: generation id -> live state.
window.tokenrelay = { generations: {} };

let turns = loadTurns();
let active = null; // {turn, gen, stream}

function loadTurns() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || "[]");
  } catch {
    return [];
  }
}

function saveTurns() {
  sessionStorage.setItem(STORE, JSON.stringify(turns));
}

function history() {
  const messages = [];
  for (const turn of turns) {
    if (turn.role === "user") messages.push({ role: "user", content: turn.content });
    else if (turn.content && turn.status !== "failed") messages.push({ role: "assistant", content: turn.content });
  }
  return messages;
}

function nearBottom() {
  return window.innerHeight + window.scrollY >= document.body.scrollHeight - 120;
}

function scrollToEnd(force = false) {
  if (force || nearBottom()) window.scrollTo({ top: document.body.scrollHeight });
}

function setBusy(busy) {
  sendEl.hidden = busy;
  stopEl.hidden = !busy;
  stopEl.disabled = false;
  stopEl.textContent = "■ Stop";
  document.body.classList.toggle("busy", busy);
}

function showEmptyState() {
  $("empty").hidden = turns.length > 0;
}

function renderUserTurn(turn) {
  const item = el(
    "li",
    { class: "message user" },
    el("div", { class: "bubble" }, turn.content),
  );
  messagesEl.append(item);
}

/** An assistant turn: the answer view plus a footer with status, figures and the share link. */
function renderAssistantTurn(turn) {
  const content = el("div", { class: "answer" });
  const footer = el("div", { class: "answer-footer" });
  const item = el(
    "li",
    { class: "message assistant", dataset: { generation: turn.genId || "" } },
    el("div", { class: "avatar", "aria-hidden": "true" }, "tr"),
    el("div", { class: "assistant-main" }, content, footer),
  );
  messagesEl.append(item);
  const view = new AnswerView(content);
  return { item, view, footer, connection: null };
}

function renderFooter(ui, turn, gen) {
  const figures = stats(gen);
  const parts = [statusPill(gen.status), el("span", { class: "model-name" }, gen.model || turn.model)];
  if (figures.ttftMs !== null) parts.push(el("span", { class: "figure", title: "time to first token" }, `TTFT ${formatMs(figures.ttftMs)}`));
  if (figures.tokens) parts.push(el("span", { class: "figure" }, `${figures.exact ? "" : "≈"}${figures.tokens} tokens`));
  if (figures.tokensPerS !== null) parts.push(el("span", { class: "figure" }, formatRate(figures.tokensPerS)));
  if (ui.connection) parts.push(el("span", { class: `conn conn-${ui.connection.kind}` }, ui.connection.text));
  if (turn.genId) {
    const url = watchUrl(turn.genId);
    parts.push(
      el("span", { class: "spacer" }),
      el("a", { class: "share-link", href: url, target: "_blank", rel: "noopener" }, "Watch live ↗"),
      el("button", { type: "button", class: "ghost small", dataset: { copy: url }, title: "Copy the watch link" }, "Copy link"),
      el("button", { type: "button", class: "ghost small", dataset: { share: turn.genId }, title: "A read-only link that works without a key (share.js)" }, "Share"),
    );
  }
  ui.footer.replaceChildren(...parts);
}

/** Follows an answer's events until it ends, updating its view; resolves at the end. */
async function streamAnswer(turn, ui, gen) {
  window.tokenrelay.generations[gen.id] = gen;
  const updateFooter = throttled(() => renderFooter(ui, turn, gen), 250);
  const stream = followGeneration(gen.id, {
    onEvent: (event) => {
      const change = applyEvent(gen, event);
      ui.view.update(gen, change);
      updateFooter(change !== "text");
      scrollToEnd();
    },
    onState: (state, info) => {
      if (state === "dropped") ui.connection = { kind: "dropped", text: `Connection lost; resuming in ${formatMs(info.retryInMs)}…` };
      else if (state === "open" && info.resumed) ui.connection = { kind: "resumed", text: "Reconnected: resumed where it left off" };
      else if (state === "failed") {
        gen.status = "failed";
        gen.error = { type: info.error?.type, message: info.error?.message || "the stream failed" };
        ui.view.update(gen, "status");
      }
      renderFooter(ui, turn, gen);
    },
  });
  if (active) active.stream = stream;
  await stream.done;
  turn.content = gen.text;
  turn.status = gen.status;
  turn.error = gen.error;
  saveTurns();
  ui.view.renderNow(gen);
  renderFooter(ui, turn, gen);
}

async function send(text) {
  const model = modelEl.value;
  const messages = [...history(), { role: "user", content: text }];
  const userTurn = { role: "user", content: text };
  turns.push(userTurn);
  renderUserTurn(userTurn);
  const turn = { role: "assistant", model, genId: null, content: "", status: "queued" };
  turns.push(turn);
  saveTurns();
  showEmptyState();
  const ui = renderAssistantTurn(turn);
  const gen = newGeneration({ model, status: "queued" });
  ui.view.renderNow(gen);
  renderFooter(ui, turn, gen);
  scrollToEnd(true);
  active = { turn, gen, stream: null, stopRequested: false };
  setBusy(true);
  try {
    const created = await apiRequest("/v1/generations", { method: "POST", body: { model, messages } });
    turn.genId = gen.id = created.id;
    gen.createdAt = created.created_at;
    ui.item.dataset.generation = created.id;
    saveTurns();
    renderFooter(ui, turn, gen);
    if (active.stopRequested) stop(); // Stop was pressed before the id was known
    await streamAnswer(turn, ui, gen);
  } catch (error) {
    gen.status = "failed";
    gen.error = { type: error.type || "error", message: error.message || String(error) };
    turn.status = "failed";
    turn.error = gen.error;
    saveTurns();
    ui.view.renderNow(gen);
    renderFooter(ui, turn, gen);
  } finally {
    active = null;
    setBusy(false);
    promptEl.focus();
  }
}

async function stop() {
  if (!active) return;
  stopEl.disabled = true;
  stopEl.textContent = "Stopping…";
  if (!active.gen.id) {
    active.stopRequested = true;
    return;
  }
  try {
    await apiRequest(`/v1/generations/${encodeURIComponent(active.gen.id)}/cancel`, { method: "POST" });
  } catch (error) {
    if (error.status !== 409) {
      // 409: it finished meanwhile; anything else is worth saying.
      alert(`Could not stop the answer: ${error.message}`);
      stopEl.disabled = false;
      stopEl.textContent = "■ Stop";
    }
  }
}

function restore() {
  for (const turn of turns) {
    if (turn.role === "user") {
      renderUserTurn(turn);
      continue;
    }
    const ui = renderAssistantTurn(turn);
    const gen = newGeneration({ id: turn.genId, model: turn.model, status: turn.status });
    if (turn.genId && !FINISHED.has(turn.status)) {
      // It was streaming when the page went away: replay it from its first event.
      active = { turn, gen, stream: null };
      setBusy(true);
      streamAnswer(turn, ui, gen).finally(() => { active = null; setBusy(false); });
    } else {
      gen.text = turn.content || "";
      gen.error = turn.error || null;
      ui.view.renderNow(gen);
      renderFooter(ui, turn, gen);
    }
  }
  showEmptyState();
}

async function loadModels() {
  try {
    const list = await apiRequest("/v1/models");
    const ids = list.data.map((m) => m.id);
    modelEl.replaceChildren(...ids.map((id) => el("option", { value: id }, id)));
    const preferred = localStorage.getItem(MODEL_STORE);
    if (preferred && ids.includes(preferred)) modelEl.value = preferred;
  } catch (error) {
    modelEl.replaceChildren(el("option", { value: "" }, "models unavailable"));
    console.warn("cannot list models", error);
  }
}

function autosize() {
  promptEl.style.height = "auto";
  promptEl.style.height = `${Math.min(promptEl.scrollHeight, 240)}px`;
}

function setup() {
  setupPage();
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = promptEl.value.trim();
    if (!text || active || !modelEl.value) return;
    promptEl.value = "";
    autosize();
    send(text);
  });
  promptEl.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  promptEl.addEventListener("input", autosize);
  stopEl.addEventListener("click", stop);
  modelEl.addEventListener("change", () => localStorage.setItem(MODEL_STORE, modelEl.value));
  $("new-chat").addEventListener("click", () => {
    active?.stream?.close();
    turns = [];
    saveTurns();
    messagesEl.replaceChildren();
    active = null;
    setBusy(false);
    showEmptyState();
    promptEl.focus();
  });
  for (const chip of document.querySelectorAll("[data-prompt]")) {
    chip.addEventListener("click", () => {
      promptEl.value = chip.dataset.prompt;
      autosize();
      promptEl.focus();
    });
  }
  restore();
  loadModels();
  promptEl.focus();
}

setup();
