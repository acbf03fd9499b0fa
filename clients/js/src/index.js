// tokenrelay-client: the tokenrelay API from browsers and Node >= 18.
export { TokenRelay } from "./client.js";
export { GenerationStream } from "./stream.js";
export { ResumableEventStream } from "./events.js";
export { compareEventIds, createSseParser, eventIdKey } from "./sse.js";
export {
  APIConnectionError,
  APIError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  TokenRelayError,
  errorFromResponse,
} from "./errors.js";
