import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type Logger = PinoLogger;

/**
 * Keys whose values never reach a log line, at any depth. Secrets should never be passed to a log call, but a
 * config object or an error carrying an env copy can slip through; redaction at the root is the safety net.
 */
const SECRET_KEYS = new Set(
  [
    'password',
    'passwd',
    'token',
    'bottoken',
    'apptoken',
    'signingsecret',
    'secret',
    'routingkey',
    'routing_key',
    'authorization',
    'databaseurl',
    'database_url',
    'url',
    'connectionstring',
    'env',
    'pgpassword',
    'identity',
    'cookie',
  ].map((k) => k.toLowerCase()),
);

// postgres://user:secret@host → postgres://user:[redacted]@host, wherever a URL sits inside a string.
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s/]+@/gi;
const SLACK_TOKEN = /\bx(?:oxb|oxp|app|oxa|oxe)-[A-Za-z0-9-]+/g;

export function redactSecrets(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return value.replace(URL_PASSWORD, '$1[redacted]@').replace(SLACK_TOKEN, '[redacted-token]');
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  if (value instanceof Error) {
    // A scrubbed copy of the same class, so pino's error serializer still names its type.
    const copy = Object.create(Object.getPrototypeOf(value)) as Error & Record<string, unknown>;
    // name, message and code read from the original too and given to the copy as its own: on a DOMException (an
    // AbortSignal.timeout, a fetch's timeout under the Slack client) they are getters of its prototype that refuse
    // any other object, and the serializer reading them off the copy threw inside the log call (QA: a job failed
    // with "Value of "this" must be of DOMException" when Slack timed out).
    const inherited = ['name', 'message', 'code'].filter((k) => k in value);
    for (const key of new Set([...Object.getOwnPropertyNames(value), ...inherited])) {
      const v = (value as unknown as Record<string, unknown>)[key];
      // Defined, not assigned: some errors' classes (ioredis's ReplyError) have a getter-only `name`, and an
      // assignment would throw inside the log call — from a catch handler, an unhandled rejection.
      Object.defineProperty(copy, key, {
        value: SECRET_KEYS.has(key.toLowerCase()) ? '[redacted]' : redactSecrets(v, depth + 1, seen),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return copy;
  }
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.has(k.toLowerCase()) ? '[redacted]' : redactSecrets(v, depth + 1, seen);
  return out;
}

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      formatters: { log: (obj) => redactSecrets(obj) as Record<string, unknown> },
      hooks: {
        // Messages are strings we write, but an interpolated error text could hold a URL with a password.
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? (redactSecrets(a) as string) : a)) as Parameters<typeof method>);
        },
      },
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
