import type { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

/** A pass-through that counts the bytes going by (`onChunk`) and, given a hash, feeds it: one pass, no copy. */
export function counter(onChunk: (n: number) => void, hash?: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash?.update(chunk);
      onChunk(chunk.length);
      done(null, chunk);
    },
  });
}
