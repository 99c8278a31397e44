/**
 * Errors with a stable code, an HTTP status and a retryable flag. One Express error handler maps
 * them to `{ "error": { "code", "message" } }`; retry loops honour `retryable` and never retry
 * programmer errors.
 */
export interface AppErrorOptions {
  readonly retryable?: boolean;
  readonly cause?: unknown;
  /** Extra fields for the response body (e.g. the current ETag). */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Response headers that go with the error (e.g. `WWW-Authenticate` of a 401). */
  readonly headers?: Readonly<Record<string, string>>;
}

export class AppError extends Error {
  override readonly name: string = 'AppError';
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>> | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;

  constructor(
    readonly code: string,
    readonly httpStatus: number,
    message: string,
    options: AppErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = options.retryable ?? false;
    this.details = options.details;
    this.headers = options.headers;
  }
}

/** The request is malformed: fix it, do not retry it unchanged. */
export class BadRequestError extends AppError {
  override readonly name = 'BadRequestError';
  constructor(code: string, message: string, options: AppErrorOptions = {}) {
    super(code, 400, message, options);
  }
}

export class NotFoundError extends AppError {
  override readonly name = 'NotFoundError';
  constructor(message: string, options: AppErrorOptions = {}) {
    super('not_found', 404, message, options);
  }
}

/** A conditional request (`If-Match` / `If-None-Match`) did not hold. */
export class PreconditionFailedError extends AppError {
  override readonly name = 'PreconditionFailedError';
  constructor(message: string, options: AppErrorOptions = {}) {
    super('precondition_failed', 412, message, options);
  }
}

/** A dependency is unavailable; the same request may succeed later. */
export class UnavailableError extends AppError {
  override readonly name = 'UnavailableError';
  constructor(code: string, message: string, options: AppErrorOptions = {}) {
    super(code, 503, message, { ...options, retryable: true });
  }
}

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}
