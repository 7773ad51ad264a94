import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type Logger = PinoLogger;

/**
 * Paths pino blanks out wherever they appear. Secrets should never reach a log call, but a config object or
 * an error carrying an env copy can slip through; redaction at the root is the safety net.
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'botToken',
  '*.botToken',
  'appToken',
  '*.appToken',
  'signingSecret',
  '*.signingSecret',
  'routingKey',
  '*.routingKey',
  'routing_key',
  '*.routing_key',
  'databaseUrl',
  '*.databaseUrl',
  'url',
  '*.url',
  'connectionString',
  '*.connectionString',
  'headers.authorization',
  '*.headers.authorization',
  'env',
  '*.env',
];

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { app: 'pg-backup-bot' },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** Bolt wants its own Logger shape; this adapter routes it into our pino tree. */
export function boltLogger(log: Logger) {
  let level = log.level;
  return {
    debug: (...msg: unknown[]) => log.debug({ src: 'bolt' }, msg.map(String).join(' ')),
    info: (...msg: unknown[]) => log.info({ src: 'bolt' }, msg.map(String).join(' ')),
    warn: (...msg: unknown[]) => log.warn({ src: 'bolt' }, msg.map(String).join(' ')),
    error: (...msg: unknown[]) => log.error({ src: 'bolt' }, msg.map(String).join(' ')),
    setLevel: (l: string) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}
