import type { ErrorInfo, GenerationStatus, StreamEvent, GenerationStream, ToolCall, TokenRelay, Usage } from "./index.js";

export interface ClientChoice {
  client?: TokenRelay;
  baseUrl?: string;
  apiKey?: string;
  token?: string;
}

export interface GenerationState {
  generationId: string | null;
  text: string;
  status: GenerationStatus | "idle";
  error: ErrorInfo | { type: string; message: string } | null;
  attempt: number;
  toolCalls: ToolCall[];
  reconnecting: boolean;
  finishReason: string | null;
  usage: Usage | null;
}

export function useGeneration(
  id: string | null | undefined,
  options?: ClientChoice & { onEvent?: (event: StreamEvent, stream: GenerationStream) => void },
): GenerationState;

export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
  generationId?: string | null;
  status?: GenerationStatus;
  error?: { type?: string; message: string } | null;
}

export interface Chat {
  messages: ChatMessage[];
  send(text: string): Promise<string | null>;
  stop(): Promise<void>;
  clear(): void;
  status: GenerationStatus | "idle";
  streaming: boolean;
  reconnecting: boolean;
  error: { type?: string; message: string } | null;
  generationId: string | null;
}

export function useChat(
  options?: ClientChoice & { model?: string; maxTokens?: number; storageKey?: string | null },
): Chat;
