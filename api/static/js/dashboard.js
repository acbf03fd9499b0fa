// The dashboard: generations running now and recently finished, refreshed
// every two seconds from `GET /v1/generations` (which never sends the text).

import { apiRequest } from "./api.js";
import { el, formatAgo, formatBytes, formatMs, setupPage, statusPill } from "./ui.js";

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);
let filter = "";
let timer = null;

function duration(row) {
  if (!row.started_at) return "—";
  const end = row.finished_at || Date.now() / 1000;
  return formatMs((end - row.started_at) * 1000);
}

function renderRow(row) {
  const href = `/watch/${encodeURIComponent(row.id)}`;
  const tokens = row.usage?.output_tokens;
  const live = row.status === "running" || row.status === "queued";
  return el(
    "tr",
    { dataset: { generation: row.id, status: row.status }, class: live ? "live" : "" },
    el("td", {}, statusPill(row.status)),
    el("td", { class: "mono" }, el("a", { href }, `${row.id.slice(0, 14)}…`)),
    el("td", {}, row.model),
    el("td", { class: "num" }, String(row.viewers || 0)),
    el("td", { class: "num" }, tokens != null ? String(tokens) : live ? "…" : "—"),
    el("td", { class: "num" }, formatBytes(row.content_bytes)),
    el("td", { title: new Date(row.created_at * 1000).toLocaleString() }, formatAgo(row.created_at)),
    el("td", { class: "num" }, duration(row)),
    el("td", { class: "actions" }, el("a", { class: "button ghost small", href }, live ? "Watch live" : "Replay")),
  );
}

async function refresh() {
  clearTimeout(timer);
  try {
    const query = new URLSearchParams({ limit: "50" });
    if (filter) query.set("status", filter);
    const list = await apiRequest(`/v1/generations?${query}`);
    const rows = list.data;
    $("rows").replaceChildren(...rows.map(renderRow));
    $("table-empty").hidden = rows.length > 0;
    const count = (...statuses) => rows.filter((r) => statuses.includes(r.status)).length;
    $("tile-running").textContent = String(count("running"));
    $("tile-queued").textContent = String(count("queued"));
    $("tile-viewers").textContent = String(rows.reduce((sum, r) => sum + (r.viewers || 0), 0));
    $("tile-finished").textContent = String(count("completed", "failed", "cancelled"));
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $("updated").textContent = `Cannot refresh: ${error.message}`;
  }
  timer = setTimeout(refresh, document.hidden ? REFRESH_MS * 5 : REFRESH_MS);
}

function setup() {
  setupPage();
  for (const tab of document.querySelectorAll("[data-filter]")) {
    tab.addEventListener("click", () => {
      filter = tab.dataset.filter;
      for (const other of document.querySelectorAll("[data-filter]")) {
        other.setAttribute("aria-selected", String(other === tab));
      }
      refresh();
    });
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  refresh();
}

setup();
