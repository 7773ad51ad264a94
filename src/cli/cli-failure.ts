import { isBotError } from '../errors.ts';
import { redactSecrets } from '../logger.ts';

/**
 * A failure as said to the person at a terminal: ours as said to users; anything else with its own first line too,
 * passwords and tokens redacted (QA: restore-pitr printed only "Something unexpected went wrong … the details are
 * in its logs", and its logs held nothing more).
 */
export function cliFailure(err: unknown): string {
  if (isBotError(err)) return err.userMessage;
  // Redacted whole, then cut: a cut inside a URL's password would leave no `@` for the redaction to find (second reader).
  const first = String(redactSecrets((err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '')).slice(0, 300) || 'no message';
  return `Something unexpected went wrong inside the bot: ${first}.`;
}
