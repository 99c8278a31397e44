/**
 * The root pino logger and the kafkajs → pino bridge. JSON lines on stdout; every line carries the
 * region and the component. Payloads and secrets are redacted by path.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { logLevel as KafkaLogLevel, type logCreator } from 'kafkajs';

export type { Logger } from 'pino';

export function createRootLogger(options: {
  region: string;
  level: LevelWithSilent;
  destination?: DestinationStream;
}): Logger {
  return pino(
    {
      level: options.level,
      base: { region: options.region, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'value',
          '*.value',
          'payload',
          '*.payload',
          'req.headers.authorization',
          'databaseUrl',
          '*.databaseUrl',
        ],
        censor: '[redacted]',
      },
    },
    options.destination,
  );
}

const KAFKA_TO_PINO = {
  [KafkaLogLevel.NOTHING]: 'silent',
  [KafkaLogLevel.ERROR]: 'error',
  [KafkaLogLevel.WARN]: 'warn',
  [KafkaLogLevel.INFO]: 'info',
  [KafkaLogLevel.DEBUG]: 'debug',
} as const satisfies Record<KafkaLogLevel, string>;

/** A kafkajs `logCreator` writing through `log` (component `kafkajs`). kafkajs INFO is demoted to debug: it is chatty. */
export function kafkaLogCreator(log: Logger): logCreator {
  const child = log.child({ component: 'kafkajs' });
  return () =>
    ({ level, log: entry }) => {
      const { message, timestamp: _ts, logger: _l, ...rest } = entry;
      const pinoLevel = level === KafkaLogLevel.INFO ? 'debug' : KAFKA_TO_PINO[level];
      if (pinoLevel === 'silent') return;
      child[pinoLevel](rest, message);
    };
}
