// React hooks on the tokenrelay client: `useGeneration(id, options)` and `useChat(options)`.
//
// A generation outlives the component that shows it: a refresh, a dropped
// network or a restarted API replica and the hook picks it up again, replaying
// from the first event (so the text is whole) and then following live. useChat
// keeps the conversation in sessionStorage, so a reload mid-answer shows the
// answer again and goes on streaming it.

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { TokenRelay } from "./client.js";

const FINISHED = new Set(["completed", "failed", "cancelled"]);
const IDLE = Object.freeze({
  generationId: null,
  text: "",
  status: "idle",
  error: null,
  attempt: 0,
  toolCalls: [],
  reconnecting: false,
  finishReason: null,
  usage: null,
});

/** The client of `options.client`, or one made from baseUrl/apiKey/token (kept across renders). */
function useClient({ client, baseUrl, apiKey, token } = {}) {
  return useMemo(() => client || new TokenRelay({ baseUrl, apiKey, token }), [client, baseUrl, apiKey, token]);
}

function snapshotOf(stream, error = null) {
  return {
    generationId: stream.generationId,
    text: stream.text,
    status: error ? "failed" : stream.status,
    error: error ? { type: error.type || error.name, message: error.message } : stream.error,
    attempt: stream.attempt,
    toolCalls: stream.toolCalls.map((call) => ({ ...call })),
    reconnecting: stream.reconnecting,
    finishReason: stream.finishReason,
    usage: stream.usage,
  };
}

/**
 * Follows a generation: `{ text, status, error, attempt, toolCalls, reconnecting }`.
 * `id` may be null (nothing to show yet). Options: client | {baseUrl, apiKey, token}, onEvent.
 */
export function useGeneration(id, options = {}) {
  const client = useClient(options);
  const [state, setState] = useState(IDLE);
  const onEvent = useRef(options.onEvent);
  onEvent.current = options.onEvent;

  useEffect(() => {
    if (!id) {
      setState(IDLE);
      return undefined;
    }
    const controller = new AbortController();
    const publish = (error) => {
      if (!controller.signal.aborted) setState(snapshotOf(stream, error));
    };
    const stream = client.stream(id, { signal: controller.signal, onState: () => publish() });
    setState({ ...IDLE, generationId: id, status: "queued" });
    (async () => {
      try {
        for await (const event of stream) {
          onEvent.current?.(event, stream);
          publish();
        }
        publish();
      } catch (error) {
        publish(error);
      }
    })();
    return () => controller.abort();
  }, [client, id]);

  // Until the effect has run for a new id, the state still describes the old one.
  if (state.generationId !== (id || null)) return { ...IDLE, generationId: id || null, status: id ? "queued" : "idle" };
  return state;
}

function load(key) {
  try {
    return JSON.parse(globalThis.sessionStorage?.getItem(key) || "null");
  } catch {
    return null;
  }
}

function save(key, value) {
  try {
    globalThis.sessionStorage?.setItem(key, JSON.stringify(value));
  } catch {
    /* storage full or blocked: the chat still works, it just won't survive a reload */
  }
}

/** The stored conversation; an answer the page left before it was even queued is marked failed. */
function restore(storageKey) {
  const stored = (storageKey && load(storageKey)) || [];
  return stored.map((m) =>
    m.role === "assistant" && !m.generationId && !FINISHED.has(m.status)
      ? { ...m, status: "failed", error: { message: "the page was left before the answer was queued" } }
      : m,
  );
}

/**
 * A chat: `{ messages, send, stop, clear, status, error, reconnecting, streaming }`.
 * Each message is `{ role, content, generationId?, status? }`; the last assistant
 * message's content is live while it streams. Options: model, maxTokens, storageKey
 * (sessionStorage; null to keep nothing), client | {baseUrl, apiKey, token}.
 */
export function useChat(options = {}) {
  const { model = "demo/story", maxTokens, storageKey = "tokenrelay.chat" } = options;
  const client = useClient(options);
  const [messages, setMessages] = useState(() => restore(storageKey));
  const [sendError, setSendError] = useState(null);
  const last = messages[messages.length - 1];
  const activeId = last?.role === "assistant" && last.generationId && !FINISHED.has(last.status) ? last.generationId : null;
  const live = useGeneration(activeId, { client });

  useEffect(() => {
    if (storageKey) save(storageKey, messages);
  }, [storageKey, messages]);

  // The answer being streamed is written into the conversation when it ends.
  useEffect(() => {
    if (!activeId || !FINISHED.has(live.status)) return;
    setMessages((current) =>
      current.map((m) =>
        m.generationId === activeId ? { ...m, content: live.text, status: live.status, error: live.error } : m,
      ),
    );
  }, [activeId, live.status, live.text, live.error]);

  const send = useCallback(
    async (text) => {
      const content = String(text || "").trim();
      if (!content || activeId) return null;
      setSendError(null);
      const history = messages
        .filter((m) => m.role === "user" || (m.content && m.status !== "failed"))
        .map(({ role, content: c }) => ({ role, content: c }));
      const userTurn = { role: "user", content };
      setMessages((current) => [...current, userTurn, { role: "assistant", content: "", status: "queued", generationId: null }]);
      try {
        const body = { model, messages: [...history, userTurn] };
        if (maxTokens != null) body.max_tokens = maxTokens;
        const created = await client.create(body);
        setMessages((current) => current.map((m, i) => (i === current.length - 1 ? { ...m, generationId: created.id } : m)));
        return created.id;
      } catch (error) {
        setSendError({ type: error.type || error.name, message: error.message });
        setMessages((current) =>
          current.map((m, i) => (i === current.length - 1 ? { ...m, status: "failed", error: { message: error.message } } : m)),
        );
        return null;
      }
    },
    [activeId, client, maxTokens, messages, model],
  );

  const stop = useCallback(async () => {
    if (!activeId) return;
    try {
      await client.cancel(activeId);
    } catch (error) {
      if (error.status !== 409) setSendError({ type: error.type, message: error.message });
    }
  }, [activeId, client]);

  const clear = useCallback(() => setMessages([]), []);

  const shown = activeId
    ? messages.map((m) => (m.generationId === activeId ? { ...m, content: live.text, status: live.status } : m))
    : messages;
  const pending = last?.role === "assistant" && !last.generationId && !FINISHED.has(last.status);
  return {
    messages: shown,
    send,
    stop,
    clear,
    status: activeId ? live.status : pending ? "queued" : "idle",
    streaming: Boolean(activeId) || pending,
    reconnecting: activeId ? live.reconnecting : false,
    error: sendError || (activeId ? live.error : null),
    generationId: activeId,
  };
}
