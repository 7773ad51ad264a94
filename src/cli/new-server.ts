import { BotError } from '../errors.ts';
import { parsePgUrl } from '../postgres/index.ts';

/**
 * `pg-backup-bot restore <backup-id> --to-url=… | --to-url-env=NAME [--with-globals]`: the server to restore onto
 * when the target's own is gone. A URL on the command line must carry no password (argv is visible to every user of
 * the machine, and kept in shell histories): name an environment variable that holds it instead.
 */
export interface NewServer {
  url: string | null;
  /** Where the URL came from, for sentences that would say "the target's URL" (QA): `NEW_DB_URL`, `the --to-url URL`. */
  source: string | null;
  /** `--to-url-env=NAME`: NAME, kept in the restore's record so `restore list` and `drop` find the server again. */
  urlEnv?: string;
  withGlobals: boolean;
  /** The arguments left for the restore request. */
  rest: string[];
}

export function newServerArgs(args: string[], env: NodeJS.ProcessEnv = process.env): NewServer {
  let url: string | null = null;
  let source: string | null = null;
  let urlEnv: string | undefined;
  let withGlobals = false;
  const rest: string[] = [];
  for (const a of args) {
    if (a === '--with-globals') withGlobals = true;
    else if (a.startsWith('--to-url=')) {
      url = a.slice('--to-url='.length);
      source = 'the --to-url URL';
      if (parsed(url, source).password) {
        throw new BotError(
          'bad_request',
          'The URL in --to-url has a password, which the command line would show to everyone on this machine: put the URL in an environment variable and pass --to-url-env=NAME.',
        );
      }
    } else if (a.startsWith('--to-url-env=')) {
      const name = a.slice('--to-url-env='.length);
      url = env[name] ?? null;
      source = name;
      urlEnv = name;
      if (!url) throw new BotError('bad_request', `--to-url-env=${name}: the environment has no ${name}.`);
      parsed(url, name);
    } else rest.push(a);
  }
  if (withGlobals && url === null)
    throw new BotError('bad_request', '--with-globals goes with --to-url or --to-url-env: the roles of a server that still has them need no restoring.');
  return { url, source, ...(urlEnv ? { urlEnv } : {}), withGlobals, rest };
}

/** The URL parsed, or a sentence naming where it came from (not "the target's URL", which is fine). */
function parsed(url: string, source: string) {
  try {
    return parsePgUrl(url);
  } catch (err) {
    throw new BotError('bad_request', `${source} is not a postgres:// URL (postgres://user@host:port/database, the password from the environment only).`, {
      cause: err,
    });
  }
}

/** A failure's sentence about the server restored onto: its URL named as given, not as the target's. */
export function onNewServer(server: Pick<NewServer, 'source'>, said: string): string {
  return server.source ? said.replaceAll("the target's URL", server.source) : said;
}

/**
 * An argument with a space whose shell quotes are gone (`--table='Audit Log'`): joined with the others, it read as two
 * (QA: `"Log" is not an option`). Said with the quoting that names it; null when there is none.
 */
export function spacedName(args: readonly string[]): string | null {
  const spaced = args.find((a) => /\s/.test(a) && !a.includes('"'));
  if (!spaced) return null;
  const [flag, name] = spaced.split(/=(.*)/s);
  // Each part of `schema.table` quoted on its own: '"public.order items"' names one table with a dot in its name (QA);
  // any part that is not a plain lower-case name, as SQL would fold it otherwise (Sales → sales: second reader).
  const quote = (n: string) =>
    n
      .split('.')
      .map((part) => (/^[a-z_][a-z0-9_$]*$/.test(part) ? part : `"${part}"`))
      .join('.');
  // `--table "Audit Log"`: the value as an argument of its own, joined to its option by "=".
  if (name === undefined) {
    const option = /^--(table|schema)$/.exec(args[args.indexOf(spaced) - 1] ?? '')?.[0] ?? '--table';
    return `"${spaced}": a name with a space needs SQL's double quotes inside the shell's, joined to its option: ${option}='${quote(spaced)}'.`;
  }
  return `"${spaced}": a name with a space needs SQL's double quotes inside the shell's: ${flag}='${quote(name)}'.`;
}

/** `pg-backup-bot restore`'s usage (restore-cli.ts). */
export const RESTORE_CLI_USAGE = [
  'usage: pg-backup-bot restore <backup-id> [--to-url-env=NAME | --to-url=URL-without-password] [--with-globals]   the whole database, into a new one',
  '       pg-backup-bot restore <backup-id> --into=<database> --yes                              replace a database (kept, renamed)',
  '       pg-backup-bot restore <backup-id> --table=[schema.]table… --schema=name… [--into=<database> --yes]',
  '       pg-backup-bot restore list [target] | drop <database> (a kept …_replaced_… one: --yes)',
].join('\n');
