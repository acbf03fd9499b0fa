// Errors, split as the official SDKs split them: the server answered with an error
// status (`APIError` and one subclass per error type), or it could not be reached
// (`APIConnectionError`, raised only once reconnecting is over).

export class TokenRelayError extends Error {}

export class APIError extends TokenRelayError {
  /**
   * @param {number} status HTTP status
   * @param {string} type the server's error type (`not_found_error`, …)
   * @param {string} message
   * @param {{retryAfterS?: number|null, body?: unknown}} [extra]
   */
  constructor(status, type, message, { retryAfterS = null, body = null } = {}) {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.type = type;
    this.retryAfterS = retryAfterS;
    this.body = body;
  }
}

export class BadRequestError extends APIError {}
export class AuthenticationError extends APIError {}
export class PermissionDeniedError extends APIError {}
export class NotFoundError extends APIError {}
export class ConflictError extends APIError {}
export class RateLimitError extends APIError {}
export class InternalServerError extends APIError {}

export class APIConnectionError extends TokenRelayError {
  constructor(message, { attempts = 1, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "APIConnectionError";
    this.attempts = attempts;
  }
}

const BY_STATUS = {
  400: BadRequestError,
  401: AuthenticationError,
  403: PermissionDeniedError,
  404: NotFoundError,
  409: ConflictError,
  429: RateLimitError,
};

/** Seconds from a Retry-After header, or null. */
export function retryAfterSeconds(value) {
  if (value == null || value.trim() === "") return null;
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

/** The typed error for a response with an error status (reads its body). */
export async function errorFromResponse(response) {
  let body = null;
  let type = "api_error";
  let message = `HTTP ${response.status}`;
  try {
    body = await response.json();
    type = body?.error?.type || type;
    message = body?.error?.message || message;
  } catch {
    /* not JSON: keep the status line */
  }
  const Class = BY_STATUS[response.status] || (response.status >= 500 ? InternalServerError : APIError);
  return new Class(response.status, type, message, {
    retryAfterS: retryAfterSeconds(response.headers.get("Retry-After")),
    body,
  });
}
