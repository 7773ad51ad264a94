import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import type { BotError } from '../errors.ts';
import type { ArtifactWriter } from './types.ts';

/**
 * Writes `partial` (created exclusively), and on commit fsyncs it and renames it to `final`: a file under its
 * final name is always complete and on disk. `fail` turns filesystem errors into sentences.
 */
export async function openFileWriter(partial: string, final: string, fail: (err: unknown, action: string) => BotError): Promise<ArtifactWriter> {
  const stream = createWriteStream(partial, { flags: 'wx', mode: 0o640 });
  try {
    await once(stream, 'open');
  } catch (err) {
    throw fail(err, 'write');
  }
  let state: 'open' | 'committed' | 'aborted' = 'open';
  // Not events.once: an 'error' before 'close' (e.g. writes cut short by abort) must not reject the wait.
  const closed = () => (stream.closed ? Promise.resolve() : new Promise<void>((done) => stream.once('close', () => done())));
  return {
    stream,
    path: partial,
    async commit() {
      if (state === 'committed') return;
      if (state === 'aborted') throw new Error(`commit() after abort() of ${final}`);
      if (!stream.writableFinished) throw new Error(`commit() before the stream of ${final} finished`);
      try {
        await closed();
        // The data must be on disk before the name says it is complete.
        const fh = await open(partial, 'r');
        await fh.sync().finally(() => fh.close());
        await rename(partial, final);
        state = 'committed';
      } catch (err) {
        throw fail(err, 'store');
      }
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      // Pending writes fail with ERR_STREAM_DESTROYED; nobody needs to hear about it.
      stream.on('error', () => undefined);
      stream.destroy();
      await closed();
      await rm(partial, { force: true });
    },
  };
}
