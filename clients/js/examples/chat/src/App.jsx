// A chat that survives refreshes, dropped networks and API restarts: the whole
// streaming part is `useChat` (and `useGeneration` for a shared link, #watch=ID).
import { useState } from "react";
import { useChat, useGeneration } from "tokenrelay-client/react";

function Chat() {
  const [prompt, setPrompt] = useState("");
  const chat = useChat({ model: "demo/story", maxTokens: 200 });
  const submit = (event) => {
    event.preventDefault();
    chat.send(prompt);
    setPrompt("");
  };
  return (
    <main>
      <ol className="messages">
        {chat.messages.map((m, i) => (
          <li key={i} className={m.role} data-status={m.status} data-generation={m.generationId || ""}>
            <span className="content">{m.content || (m.role === "assistant" ? "…" : "")}</span>
            {m.error && <em className="error"> {m.error.message}</em>}
            {m.generationId && m.status === "completed" && <a href={`#watch=${m.generationId}`}> share</a>}
          </li>
        ))}
      </ol>
      <p className="state" data-testid="state">
        {chat.reconnecting ? "Reconnecting…" : chat.status}
        {chat.error && ` · ${chat.error.message}`}
      </p>
      <form onSubmit={submit}>
        <input name="prompt" value={prompt} onChange={(e) => setPrompt(e.target.value)} placeholder="Say something" autoFocus />
        {chat.streaming ? (
          <button type="button" onClick={chat.stop}>Stop</button>
        ) : (
          <button type="submit" disabled={!prompt.trim()}>Send</button>
        )}
        <button type="button" onClick={chat.clear} disabled={chat.streaming}>New chat</button>
      </form>
    </main>
  );
}

function Watch({ id }) {
  const { text, status, attempt, reconnecting, error } = useGeneration(id);
  return (
    <main>
      <p className="state" data-testid="state">
        {reconnecting ? "Reconnecting…" : status} · attempt {attempt}
        {error && ` · ${error.message}`}
      </p>
      <pre data-testid="text" data-status={status}>{text}</pre>
      <a href="#">back to the chat</a>
    </main>
  );
}

export function App() {
  const [hash, setHash] = useState(location.hash);
  if (typeof window !== "undefined") window.onhashchange = () => setHash(location.hash);
  const watch = /^#watch=(.+)$/.exec(hash);
  return (
    <>
      <header>tokenrelay · React</header>
      {watch ? <Watch id={decodeURIComponent(watch[1])} /> : <Chat />}
    </>
  );
}
