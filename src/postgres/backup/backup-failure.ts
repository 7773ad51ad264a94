import { BotError } from '../../errors.ts';
import { firstErrorLine, toolFailure, type FailureContext } from '../failures.ts';
import { ToolPipeError } from './tool-chain.ts';

export const BACKUP_CANCELED = 'The backup was canceled before it finished; nothing was kept.';

/** Between a backup's steps: once the caller has canceled, nothing more is started. */
export function throwIfCanceled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new BotError('canceled', BACKUP_CANCELED);
}

/** Any failure → one BotError with a sentence for people; stderr tails go into its detail for logs. */
export function toBotError(err: unknown, ctx: FailureContext, signal: AbortSignal | undefined): BotError {
  if (signal?.aborted) return new BotError('canceled', BACKUP_CANCELED, { cause: err });
  if (err instanceof BotError) return err;
  if (err instanceof ToolPipeError) {
    if (err.stage === 'canceled') return new BotError('canceled', BACKUP_CANCELED, { cause: err });
    if (err.stage === 'tool') return toolFailure(err.toolStderr, ctx, err, err.exit);
    if (err.stage === 'encryptor') {
      return new BotError(
        'internal',
        `Encrypting the backup failed (${String(err.cause instanceof Error ? err.cause.message : err.cause).slice(0, 160)}); nothing was kept.`,
        { cause: err },
      );
    }
    if (err.stage === 'compressor') {
      const line = firstErrorLine(err.compressorStderr) || err.message;
      return new BotError('compressor_failed', `zstd failed while compressing the backup: ${line}`, { cause: err, detail: err.compressorStderr });
    }
    err = err.cause ?? err;
    if (err instanceof BotError) return err;
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC') return toolFailure('No space left on device', ctx, err);
  if (code && /^E[A-Z]+$/.test(code)) {
    return new BotError('storage_failed', `Writing the backup to ${ctx.storage} failed (${code}); check the backup directory.`, { cause: err });
  }
  return new BotError('internal', 'The backup failed unexpectedly; the details are in the bot’s logs.', { cause: err });
}
