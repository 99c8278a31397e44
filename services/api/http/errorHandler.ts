/** The one Express error handler: maps every error to `{ error: { code, message } }` and a status. */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError, isAppError } from '../../../shared/errors/appError.js';
import { safeText } from '../../../shared/domain/itemRules.js';
import { isDataRejection, isRetryablePgError } from '../../../shared/errors/pgErrors.js';
import type { Logger } from '../../../shared/logging/logger.js';

interface BodyParserError {
  type?: string;
  status?: number;
  limit?: number;
  charset?: string;
  encoding?: string;
}

/** Translate what body-parser, PostgreSQL and our own code throw into an AppError. */
export function toAppError(err: unknown): AppError {
  if (isAppError(err)) return err;
  const bp = err as BodyParserError;
  switch (bp?.type) {
    case 'entity.parse.failed':
      return new AppError('malformed_json', 400, `the body is not valid JSON: ${(err as Error).message}`);
    case 'entity.too.large':
      return new AppError(
        'body_too_large',
        413,
        `the body is larger than the limit of ${bp.limit ?? '?'} bytes`,
      );
    case 'charset.unsupported':
      return new AppError(
        'unsupported_media_type',
        415,
        `unsupported charset ${JSON.stringify(bp.charset)}: send UTF-8`,
      );
    case 'encoding.unsupported':
      return new AppError(
        'unsupported_media_type',
        415,
        `unsupported Content-Encoding${typeof bp.encoding === 'string' ? ` ${JSON.stringify(safeText(bp.encoding, 100))}` : ''}: send the body uncompressed, or gzip, deflate or br`,
      );
    case 'request.aborted':
      return new AppError('request_aborted', 400, 'the client aborted the request');
    default:
      break;
  }
  // A body that does not inflate as its Content-Encoding says: body-parser passes zlib's error on
  // (code Z_DATA_ERROR, or ERR_… from Brotli), marked 400.
  const zlibCode = (err as { code?: unknown; errno?: unknown } | null)?.code;
  if (
    bp?.status === 400 &&
    typeof (err as { errno?: unknown }).errno === 'number' &&
    typeof zlibCode === 'string' &&
    /^(Z_|ERR_)/.test(zlibCode)
  ) {
    return new AppError(
      'malformed_body',
      400,
      `the body does not decode as its Content-Encoding says (${safeText((err as Error).message, 200)})`,
    );
  }
  // Express decodes route parameters with decodeURIComponent; a bad escape (`%zz`, `%e9` alone)
  // throws a URIError it marks 400.
  if (err instanceof URIError) {
    return new AppError(
      'invalid_path',
      400,
      `the path is not valid percent-encoded UTF-8: ${safeText(err.message, 200)}`,
    );
  }
  if (typeof bp?.status === 'number' && bp.status >= 400 && bp.status < 500) {
    return new AppError('bad_request', bp.status, (err as Error).message);
  }
  if (isDataRejection(err))
    return new AppError('invalid_value', 400, `the database rejected the value: ${(err as Error).message}`);
  if (
    isRetryablePgError(err) ||
    /timeout exceeded when trying to connect/i.test((err as Error)?.message ?? '')
  ) {
    return new AppError('database_unavailable', 503, "this region's database is unavailable; retry shortly", {
      retryable: true,
      cause: err,
    });
  }
  return new AppError('internal', 500, 'internal error', { cause: err });
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const e = toAppError(err);
    if (e.httpStatus >= 500) log.error({ err, method: req.method, url: req.originalUrl }, 'request failed');
    if (e.retryable) res.setHeader('Retry-After', '1');
    for (const [name, value] of Object.entries(e.headers ?? {})) res.setHeader(name, value);
    res.status(e.httpStatus).json({ error: { code: e.code, message: e.message, ...(e.details ?? {}) } });
  };
}

export const notFoundHandler: RequestHandler = (req, res) => {
  res
    .status(404)
    .json({ error: { code: 'route_not_found', message: `no route for ${req.method} ${req.path}` } });
};
