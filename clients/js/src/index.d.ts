// Types of tokenrelay-client (the sources are plain ES modules with JSDoc).

export type GenerationStatus = "queued" | "running" | "completed" | "failed" | "cancelled";

export interface Usage { input_tokens: number; output_tokens: number }
export interface ToolCall { id: string | null; name: string | null; arguments: string }
export interface ErrorInfo { type: string; message: string; retryable?: boolean }

export interface Generation {
  id: string;
  status: GenerationStatus;
  model: string;
  content: string;
  tool_calls: ToolCall[];
  finish_reason: string | null;
  usage: Usage | null;
  error: ErrorInfo | null;
  attempt: number;
  created_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  last_event_id: string | null;
  [extra: string]: unknown;
}

export interface CreatedGeneration {
  id: string;
  status: "queued";
  model: string;
  events_url: string;
  created_at: number;
}

export interface ViewerToken { token: string; expires_at: number; watch_url: string; events_url: string }

export interface Message { role: "system" | "user" | "assistant"; content: string }

export interface CreateGeneration {
  model: string;
  messages: Message[];
  max_tokens?: number;
  temperature?: number;
  tools?: unknown[];
  metadata?: Record<string, string>;
}

export type StreamEvent =
  | { type: "start"; id: string; data: { generation_id: string; model: string; attempt: number } }
  | { type: "delta"; id: string; data: { text: string } | { tool_call: { index: number; id: string | null; name: string | null; arguments: string } } }
  | { type: "reset"; id: string; data: { attempt: number; reason: string } }
  | { type: "done"; id: string; data: { finish_reason: string; usage: Usage | null } }
  | { type: "error"; id: string; data: { type: string; message: string; retryable: boolean } }
  | { type: "cancelled"; id: string; data: Record<string, never> }
  | { type: "resync"; id: string; data: Generation };

export type StreamState = "connecting" | "open" | "dropped" | "closed" | "failed";

export interface StreamOptions {
  lastEventId?: string;
  signal?: AbortSignal;
  onState?: (state: StreamState, info: Record<string, unknown>) => void;
  maxBackoffMs?: number;
  maxFailures?: number;
  stallMs?: number;
}

export class GenerationStream implements AsyncIterable<StreamEvent> {
  readonly generationId: string;
  readonly text: string;
  readonly status: GenerationStatus;
  readonly attempt: number;
  readonly toolCalls: ToolCall[];
  readonly finishReason: string | null;
  readonly usage: Usage | null;
  readonly error: ErrorInfo | null;
  readonly reconnecting: boolean;
  readonly reconnects: number;
  readonly lastEventId: string;
  readonly finished: boolean;
  close(): void;
  untilDone(): Promise<this>;
  [Symbol.asyncIterator](): AsyncIterator<StreamEvent>;
}

export interface ClientOptions {
  baseUrl?: string;
  fetch?: typeof fetch;
  maxRetries?: number;
  waitOnRateLimit?: boolean;
  maxBackoffMs?: number;
  maxFailures?: number;
  stallMs?: number;
}

export class TokenRelay {
  constructor(options?: ClientOptions & ({ apiKey?: string; token?: never } | { token?: string; apiKey?: never }));
  readonly baseUrl: string;
  create(body: CreateGeneration, options?: { signal?: AbortSignal }): Promise<CreatedGeneration>;
  get(id: string, options?: { signal?: AbortSignal }): Promise<Generation>;
  cancel(id: string, options?: { signal?: AbortSignal }): Promise<Generation>;
  list(options?: { limit?: number; status?: string[]; ids?: string[]; signal?: AbortSignal }): Promise<{ data: Array<Record<string, unknown>>; has_more: boolean }>;
  viewerToken(id: string, options?: { ttlS?: number; signal?: AbortSignal }): Promise<ViewerToken>;
  stream(id: string, options?: StreamOptions): GenerationStream;
}

export interface RawEvent { type: string; data: string; id: string }

export function createSseParser(options: {
  onEvent: (event: RawEvent) => void;
  onRetry?: (ms: number) => void;
  lastEventId?: string;
}): { push(text: string): void; lastEventId: string };

export function compareEventIds(a: string, b: string): number;

export interface ResumableEventStreamOptions extends StreamOptions {
  headers?: () => Record<string, string>;
  onEvent?: (event: { type: string; data: unknown; id: string }) => void;
  onUnauthorized?: (error: AuthenticationError) => Promise<void>;
  onEmptyClose?: () => Promise<boolean>;
  waitOnRateLimit?: boolean;
  fetch?: typeof fetch;
}

export class ResumableEventStream {
  constructor(url: string, options?: ResumableEventStreamOptions);
  lastEventId: string;
  reconnects: number;
  finished: boolean;
  error: Error | null;
  run(): Promise<void>;
  close(): void;
}

export class TokenRelayError extends Error {}
export class APIError extends TokenRelayError {
  constructor(status: number, type: string, message: string, extra?: { retryAfterS?: number | null; body?: unknown });
  readonly status: number;
  readonly type: string;
  readonly retryAfterS: number | null;
  readonly body: unknown;
}
export class BadRequestError extends APIError {}
export class AuthenticationError extends APIError {}
export class PermissionDeniedError extends APIError {}
export class NotFoundError extends APIError {}
export class ConflictError extends APIError {}
export class RateLimitError extends APIError {}
export class InternalServerError extends APIError {}
export class APIConnectionError extends TokenRelayError {
  readonly attempts: number;
}
export function errorFromResponse(response: Response): Promise<APIError>;
