// Viewer-token links: the Share buttons, and a token arriving in the address bar.
//
// Loaded before the page's own module. A watch link carries a read-only viewer
// token in `?token=`; this takes it out of the address bar at once
// (history.replaceState, so it is not left in the history, nor copied along with
// the URL) and keeps it for this tab as the credential the API calls send in
// their `Authorization` header. Pages are served with `Referrer-Policy:
// no-referrer`, so the token never leaves in a Referer either.
//
// A Share button (`data-share`, with a generation id or empty for the watch
// page's own) asks the API for a token link and copies it.

import { apiRequest } from "./api.js";

const KEY_STORAGE = "tokenrelay.apiKey";

function adoptTokenFromUrl() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (!token) return;
  try {
    sessionStorage.setItem(KEY_STORAGE, token);
  } catch {
    // no storage: the page's calls go without it and say why
  }
  url.searchParams.delete("token");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
}

function pageGenerationId() {
  const parts = location.pathname.split("/").filter(Boolean);
  return parts[0] === "watch" ? decodeURIComponent(parts[1] || "") : "";
}

/** A link anyone can open to watch `genId` live, without a key, until it expires. */
export async function shareLink(genId) {
  const minted = await apiRequest(`/v1/generations/${encodeURIComponent(genId)}/viewer-tokens`, {
    method: "POST",
    body: {},
  });
  return new URL(minted.watch_url, location.origin).href;
}

async function share(button) {
  const genId = button.dataset.share || pageGenerationId();
  if (!genId) return;
  const label = button.textContent;
  button.disabled = true;
  try {
    const link = await shareLink(genId);
    button.dataset.link = link;
    const field = document.getElementById("share-url");
    if (field && !button.dataset.share) field.value = link;
    try {
      await navigator.clipboard.writeText(link);
      button.textContent = "Link copied";
    } catch {
      button.textContent = "Link ready";
      window.prompt("Share this link (read-only, expires):", link);
    }
  } catch (error) {
    button.textContent = error?.status === 403 ? "Not allowed" : "Share failed";
  } finally {
    button.disabled = false;
    setTimeout(() => (button.textContent = label), 2500);
  }
}

adoptTokenFromUrl();
document.addEventListener("click", (event) => {
  const button = event.target.closest?.("[data-share]");
  if (button) share(button);
});
