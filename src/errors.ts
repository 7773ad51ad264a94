/** Codes for failures a user can meet; each carries a sentence that says what happened and what to do. */
export type ErrorCode =
  | 'config_invalid'
  | 'bad_request'
  | 'unknown_target'
  | 'backup_not_found'
  /** A finished backup the listing leaves out: marked damaged, an artifact gone or cut short (catalog.ts findRestorable). */
  | 'backup_damaged'
  | 'pg_unreachable'
  | 'pg_auth_failed'
  | 'pg_database_missing'
  | 'pg_version_mismatch'
  /** Restored objects name a role the server lacks (a verdict on where it was restored, not a connection failure). */
  | 'pg_role_missing'
  | 'pg_dump_failed'
  | 'pg_tool_missing'
  | 'compressor_failed'
  | 'storage_failed'
  | 'backup_exists'
  | 'disk_full'
  | 'encryption_required'
  | 'decryption_failed'
  | 'canceled'
  | 'already_running'
  | 'pagerduty_rejected'
  | 'pagerduty_unavailable'
  /** Slack's Web API could not be reached, or answered with an HTTP error instead of an API answer. */
  | 'slack_unreachable'
  | 'internal';

/** How a backup that failed on a full disk is said (and recognised in the run log: health/disk-condition.ts). */
export const BACKUP_DISK_FULL = 'The backup disk is full';

export class BotError extends Error {
  readonly code: ErrorCode;
  /** One sentence for people in Slack: what happened and, where known, what to do. Never a stack trace. */
  readonly userMessage: string;

  constructor(code: ErrorCode, userMessage: string, options?: { cause?: unknown; detail?: string | undefined }) {
    super(options?.detail ?? userMessage, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BotError';
    this.code = code;
    this.userMessage = userMessage;
  }
}

/** No finished backup has that id: the commands that name one add where to see the backups there are (findBackup). */
export class NoSuchBackupError extends BotError {
  constructor(
    readonly target: string,
    readonly backupId: string,
    options?: { cause?: unknown },
  ) {
    super('backup_not_found', `There is no finished backup ${backupId} of ${target}.`, options);
  }
}

export function isBotError(err: unknown): err is BotError {
  return err instanceof BotError;
}

/** The one place an error becomes text people read. Unknown errors stay vague on purpose: details go to logs. */
export function toUserMessage(err: unknown): string {
  if (isBotError(err)) return err.userMessage;
  // A file the system refused (a BACKUP_DIR made unreadable, a symlink loop) says which and why, not "see the logs":
  // a CLI's logs are often silent (QA: list, check, scrub and retention said only that).
  const sys = err as { code?: unknown; syscall?: unknown; path?: unknown } | null;
  if (sys && typeof sys.code === 'string' && /^E[A-Z]+$/.test(sys.code) && typeof sys.syscall === 'string' && typeof sys.path === 'string')
    return `The system refused to ${sys.syscall} ${sys.path} (${sys.code}${SYSTEM_SAYS[sys.code] ? `: ${SYSTEM_SAYS[sys.code]}` : ''}); check that path's owner, permissions and mount.`;
  return UNEXPECTED;
}

const UNEXPECTED = 'Something unexpected went wrong inside the bot; the details are in its logs.';

/** Ours, or a file the system refused, as said to users; anything else by its own message (it names the fault). */
export function reasonOf(err: unknown): string {
  const said = toUserMessage(err);
  return said !== UNEXPECTED || !(err instanceof Error) ? said : err.message;
}

const SYSTEM_SAYS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ELOOP: 'too many symbolic links',
  EIO: 'input/output error, the disk or its mount',
  ENOTDIR: 'a part of the path is not a directory',
  ENOENT: 'no such file or directory',
  ESTALE: 'stale file handle, a network mount',
};

/** What the person asked for cannot be: a typo, an unknown id or target, a refused request. Not the bot's fault. */
const ASKED_WRONG: ReadonlySet<ErrorCode> = new Set([
  'bad_request',
  'unknown_target',
  'backup_not_found',
  'backup_damaged',
  'already_running',
  'backup_exists',
]);

/**
 * The log fields for an error a command answered with: a request that could not be (a typo, an unknown backup
 * id) is logged as its code and sentence, since a stack says nothing more about it and a screen of one per typo
 * hides what matters; anything else with its stack.
 */
export function errorLogFields(err: unknown): Record<string, unknown> {
  return isBotError(err) && ASKED_WRONG.has(err.code) ? { code: err.code, reason: err.userMessage } : { err };
}
