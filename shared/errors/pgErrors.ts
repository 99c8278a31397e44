/**
 * PostgreSQL SQLSTATE codes the service reacts to, and whether an error is worth retrying.
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export const SQLSTATE = {
  uniqueViolation: '23505',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  lockNotAvailable: '55P03',
  queryCanceled: '57014',
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
  diskFull: '53100',
  tooManyConnections: '53300',
  connectionException: '08000',
  connectionDoesNotExist: '08003',
  connectionFailure: '08006',
  untranslatableCharacter: '22P05',
  invalidTextRepresentation: '22P02',
  characterNotInRepertoire: '22021',
} as const;

const RETRYABLE_SQLSTATES: ReadonlySet<string> = new Set([
  SQLSTATE.serializationFailure,
  SQLSTATE.deadlockDetected,
  SQLSTATE.lockNotAvailable,
  // Cancelled from outside (pg_cancel_backend, a shutdown): the statement itself was fine.
  SQLSTATE.queryCanceled,
  SQLSTATE.adminShutdown,
  SQLSTATE.crashShutdown,
  SQLSTATE.cannotConnectNow,
  // A full disk is the server's state, not the statement's; out of (shared) memory is not here:
  // a batch too large for the lock table fails the same way each time, and is applied one by one.
  SQLSTATE.diskFull,
  SQLSTATE.tooManyConnections,
  SQLSTATE.connectionException,
  SQLSTATE.connectionDoesNotExist,
  SQLSTATE.connectionFailure,
]);

const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'EAI_AGAIN',
]);

/** SQLSTATE of a node-postgres error, if any. */
export function sqlState(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** True for failures that a later attempt may not hit: lost connections, deadlocks, restarts. */
export function isRetryablePgError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') {
    const msg = e instanceof Error ? e.message : '';
    return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
      msg,
    );
  }
  return RETRYABLE_SQLSTATES.has(code) || NETWORK_CODES.has(code);
}

/** True when PostgreSQL rejected the data itself (e.g. a NUL character in text/jsonb). */
export function isDataRejection(e: unknown): boolean {
  const s = sqlState(e);
  return s !== undefined && s.startsWith('22');
}
