// The app is served by Vite, and /v1 is passed through to tokenrelay (same origin
// for the browser, so the API's cross-site check and CORS never come into it).
// TOKENRELAY_URL: the API (default: `tokenrelay dev` on 127.0.0.1:8000). PORT: this app.
import { defineConfig } from "vite";

const api = process.env.TOKENRELAY_URL || "http://127.0.0.1:8000";
// changeOrigin stays false: the API compares a POST's Origin with the Host it
// was sent to, and both are this app's. When the API's answer breaks off (a
// replica killed mid-stream), the proxy must break the browser's too, or the
// client would wait for a stall timeout instead of resuming at once.
const proxy = {
  "/v1": {
    target: api,
    changeOrigin: false,
    configure: (server) =>
      server.on("proxyRes", (upstream, req, res) => {
        upstream.on("close", () => {
          if (!upstream.complete) res.destroy();
        });
      }),
  },
};
const port = Number(process.env.PORT || 5173);

export default defineConfig({
  esbuild: { jsx: "automatic" },
  // tokenrelay-client is linked from ../..: it must see this app's React, not look for its own.
  resolve: { dedupe: ["react", "react-dom"] },
  server: { proxy, port },
  preview: { proxy, port, strictPort: true },
});
