import { BotError } from '../errors.ts';
import { parsePgUrl } from '../postgres/index.ts';

/**
 * `pg-backup-bot restore <backup-id> --to-url=… | --to-url-env=NAME [--with-globals]`: the server to restore onto
 * when the target's own is gone. A URL on the command line must carry no password (argv is visible to every user of
 * the machine, and kept in shell histories): name an environment variable that holds it instead.
 */
export interface NewServer {
  url: string | null;
  withGlobals: boolean;
  /** The arguments left for the restore request. */
  rest: string[];
}

export function newServerArgs(args: string[], env: NodeJS.ProcessEnv = process.env): NewServer {
  let url: string | null = null;
  let withGlobals = false;
  const rest: string[] = [];
  for (const a of args) {
    if (a === '--with-globals') withGlobals = true;
    else if (a.startsWith('--to-url=')) {
      url = a.slice('--to-url='.length);
      if (parsePgUrl(url).password) {
        throw new BotError(
          'bad_request',
          'The URL in --to-url has a password, which the command line would show to everyone on this machine: put the URL in an environment variable and pass --to-url-env=NAME.',
        );
      }
    } else if (a.startsWith('--to-url-env=')) {
      const name = a.slice('--to-url-env='.length);
      url = env[name] ?? null;
      if (!url) throw new BotError('bad_request', `--to-url-env=${name}: the environment has no ${name}.`);
    } else rest.push(a);
  }
  if (withGlobals && url === null)
    throw new BotError('bad_request', '--with-globals goes with --to-url or --to-url-env: the roles of a server that still has them need no restoring.');
  return { url, withGlobals, rest };
}
