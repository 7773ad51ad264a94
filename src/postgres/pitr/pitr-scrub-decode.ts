import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type AgeIdentity, IDENTITY_VAR, loadIdentity } from '../../crypto/age.ts';
import { isBotError, toUserMessage } from '../../errors.ts';
import { decodeWal, WalUndecodable } from './wal-decode.ts';
import type { WalEntry } from './wal-store.ts';

export type DecodeVerdict = { ok: true } | { skipped: true } | { damaged: string } | { unreadable: string };

/**
 * The decoding half of the archive's scrub: a WAL file whose bytes match their sha256 is also decrypted and
 * decompressed (counted, nothing written) and must come to the segment's size. The sha256 proves the file is as it
 * was written, not that it was written whole: archives written before 38afbe9 on hosts without the age CLI may hold
 * segments whose first compressed bytes were lost, hashed as good, that no recovery can read. Only a decode finds
 * them. What three decodes agree on is damage; a key that does not open the archive is said once (`notDecoded`) and
 * the rest of the run checks hashes only.
 */
export function walDecoder(identity: AgeIdentity | undefined | string) {
  let keyProblem: string | null =
    typeof identity === 'string' ? identity : identity ? null : `${IDENTITY_VAR} is not set on this worker: encrypted WAL was checked by its sha256 only`;
  const key = typeof identity === 'string' ? undefined : identity;
  const state = { decoded: 0, notDecoded: 0 };
  const decodeOnce = (entry: WalEntry, bytes: Buffer) =>
    decodeWal(entry, bytes, null, key).then(
      () => '',
      (err: unknown) => {
        if (err instanceof WalUndecodable) return err.userMessage;
        throw err;
      },
    );
  async function check(path: string, entry: WalEntry): Promise<DecodeVerdict> {
    if (entry.encryption === 'age' && keyProblem) {
      state.notDecoded += 1;
      return { skipped: true };
    }
    try {
      const bytes = await readFile(path);
      if (createHash('sha256').update(bytes).digest('hex') !== entry.sha256) return { unreadable: 'it read differently from one read to the next' };
      const first = await decodeOnce(entry, bytes);
      if (!first) {
        state.decoded += 1;
        return { ok: true };
      }
      const reads = [first, await decodeOnce(entry, bytes), await decodeOnce(entry, bytes)];
      if (!reads.every((r) => r === first)) return { unreadable: `it decoded differently each time (${reads.filter(Boolean).join('; ') || 'then whole'})` };
      return { damaged: `its bytes match their sha256, but it ${first.replace(/^WAL \S+ /, '').replace(/\.$/, '')}: it was stored damaged` };
    } catch (err) {
      if (isBotError(err) && err.code === 'decryption_failed') {
        keyProblem = `${err.userMessage.replace(/\.$/, '')}: encrypted WAL was checked by its sha256 only`;
        state.notDecoded += 1;
        return { skipped: true };
      }
      return { unreadable: `it could not be decoded: ${toUserMessage(err)}` };
    }
  }
  return { check, state, why: () => keyProblem };
}

/** The key the decoding scrub reads with: the identity file restores use, or why there is none to use. */
export async function scrubKey(file: string | undefined): Promise<AgeIdentity | undefined | string> {
  if (!file) return undefined;
  return loadIdentity(file, 'The archive scrub decrypts WAL to check it decompresses').catch(
    (err: unknown) => `${toUserMessage(err).replace(/\.$/, '')}: encrypted WAL was checked by its sha256 only`,
  );
}
