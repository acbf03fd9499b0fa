// Small DOM helpers shared by the pages: elements, formatting, copy buttons,
// the header's key control, and the view of one answer as it streams.

import { forgetKey, storedKey } from "./api.js";
import { FINISHED } from "./generation.js";
import { renderMarkdown } from "./markdown.js";

/** Creates an element; `children` are nodes or strings (strings become text, never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export const STATUS_LABELS = {
  queued: "Queued",
  running: "Streaming",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};

export function statusPill(status) {
  return el("span", { class: `pill pill-${status}`, dataset: { status } }, STATUS_LABELS[status] || status);
}

/** Calls `fn` at most once per `ms`, and always once more after the last request. */
export function throttled(fn, ms) {
  let last = 0;
  let timer = null;
  return (urgent = false) => {
    const wait = last + ms - performance.now();
    if (urgent || wait <= 0) {
      clearTimeout(timer);
      timer = null;
      last = performance.now();
      fn();
    } else {
      timer ??= setTimeout(() => {
        timer = null;
        last = performance.now();
        fn();
      }, wait);
    }
  };
}

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function formatRate(perS) {
  return perS === null || perS === undefined ? "—" : `${perS.toFixed(perS < 10 ? 1 : 0)}/s`;
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function formatAgo(seconds) {
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 5) return "just now";
  if (delta < 60) return `${Math.floor(delta)} s ago`;
  if (delta < 3600) return `${Math.floor(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.floor(delta / 3600)} h ago`;
  return new Date(seconds * 1000).toLocaleString();
}

export function watchUrl(genId) {
  return new URL(`/watch/${encodeURIComponent(genId)}`, location.origin).href;
}

/** Copies text, with a fallback for pages not served from a secure context. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el("textarea", { class: "offscreen" }, text);
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}

function flash(button, label) {
  const original = button.dataset.label || button.textContent;
  button.dataset.label = original;
  button.textContent = label;
  setTimeout(() => { button.textContent = original; }, 1400);
}

/** Page-wide behaviour: copy buttons on code blocks and share links, and the key control. */
export function setupPage() {
  document.addEventListener("click", async (event) => {
    const codeButton = event.target.closest(".copy-code");
    if (codeButton) {
      const code = codeButton.closest(".code-block").querySelector("code").textContent;
      flash(codeButton, (await copyText(code)) ? "Copied" : "Copy failed");
      return;
    }
    const linkButton = event.target.closest("[data-copy]");
    if (linkButton) flash(linkButton, (await copyText(linkButton.dataset.copy)) ? "Copied" : "Copy failed");
  });
  const keyButton = document.getElementById("key-button");
  if (keyButton) {
    const refresh = () => { keyButton.hidden = !storedKey(); };
    keyButton.addEventListener("click", () => { forgetKey(); location.reload(); });
    document.addEventListener("tokenrelay:key", refresh);
    refresh();
  }
}

/**
 * The rendered answer of one generation: markdown text, voided attempts, and an
 * end note for errors and cancels. Rendering is batched to one per frame, so a
 * fast stream costs one markdown pass per frame, not one per token.
 */
export class AnswerView {
  constructor(container) {
    this.container = container;
    this.discarded = el("div", { class: "discarded-list" });
    this.body = el("div", { class: "answer-body markdown", dataset: { role: "answer" } });
    this.toolCalls = el("div", { class: "tool-calls" });
    this.note = el("div", { class: "end-note", hidden: true });
    container.append(this.discarded, this.body, this.toolCalls, this.note);
    this.pending = false;
    this.gen = null;
  }

  update(gen, change) {
    this.gen = gen;
    if (change === "reset") this.renderDiscarded(gen);
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render(this.gen);
    });
  }

  renderNow(gen) {
    this.gen = gen;
    this.renderDiscarded(gen);
    this.render(gen);
  }

  renderDiscarded(gen) {
    this.discarded.replaceChildren(
      ...gen.discarded.map((d) =>
        el(
          "details",
          { class: "discarded", open: true },
          el("summary", {}, `Attempt ${d.attempt} was discarded (${d.reason.replaceAll("_", " ")}); the answer restarted from the beginning.`),
          el("div", { class: "discarded-text" }, d.text || "(no text yet)"),
        ),
      ),
    );
  }

  render(gen) {
    const live = !FINISHED.has(gen.status);
    this.body.innerHTML = renderMarkdown(gen.text); // safe: renderMarkdown escapes all input
    this.body.classList.toggle("streaming", live && gen.status === "running");
    this.body.classList.toggle("waiting", live && gen.text === "" && gen.toolCalls.length === 0);
    this.toolCalls.replaceChildren(
      ...gen.toolCalls.filter(Boolean).map((call) =>
        el("div", { class: "tool-call" }, el("span", { class: "tool-name" }, `🔧 ${call.name || "tool"}`), el("code", {}, call.arguments)),
      ),
    );
    let note = null;
    if (gen.status === "failed") {
      const message = gen.error?.message || "the generation failed";
      note = ["error", `Error${gen.error?.type ? ` (${gen.error.type})` : ""}: ${message}`];
    } else if (gen.status === "cancelled") {
      note = ["cancelled", gen.text ? "Stopped: the answer was cancelled here." : "Stopped before any text was generated."];
    } else if (gen.status === "completed" && gen.finishReason === "length") {
      note = ["info", "The answer reached its token limit."];
    }
    this.note.hidden = !note;
    if (note) {
      this.note.className = `end-note end-${note[0]}`;
      this.note.textContent = note[1];
    }
  }
}
