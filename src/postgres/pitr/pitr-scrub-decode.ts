import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type AgeIdentity, IDENTITY_VAR, loadIdentity } from '../../crypto/age.ts';
import { isBotError, toUserMessage } from '../../errors.ts';
import { errnoCode } from '../../storage/fs-util.ts';
import { findZstd } from '../tools.ts';
import { decodeWal, WalUndecodable } from './wal-decode.ts';
import type { WalEntry } from './wal-store.ts';

/** `mismatch`: not the recorded bytes, for the checksum scrub's three reads to judge; `skipped`: not decoded, not read. */
export type DecodeVerdict = { ok: true } | { skipped: true } | { mismatch: true } | { damaged: string } | { unreadable: string } | { gone: true };

/**
 * The decoding half of the archive's scrub: a WAL file is read once, its sha256 checked and its bytes decrypted and
 * decompressed (counted, nothing written) and must come to the segment's size. The sha256 proves the file is as it
 * was written, not that it was written whole: archives written before 38afbe9 on hosts without the age CLI may hold
 * segments whose first compressed bytes were lost, hashed as good, that no recovery can read. Only a decode finds
 * them.
 *
 * Damage is only zstd's own verdict on the bytes (no frame, cut short, a failing block or checksum) or a whole
 * decode of the wrong size, twice alike. Anything that says nothing about the bytes is not: a file whose key is not
 * ours is skipped (said once, `notDecodedWhy`); a zstd missing, killed or out of memory stops the decoding for the
 * run (said, never damage: second reader, a host without zstd had every segment it read set aside).
 */
export function walDecoder(identity: AgeIdentity | undefined | string) {
  let why: string | null = typeof identity === 'string' ? identity : null;
  const key = typeof identity === 'string' ? undefined : identity;
  /** Set when this host cannot decode at all: the rest of the run checks sha256s only. */
  let off: string | null = null;
  let zstdChecked = false;
  const state = { decoded: 0, notDecoded: 0 };
  const skip = (reason: string): DecodeVerdict => {
    why = reason;
    state.notDecoded += 1;
    return { skipped: true };
  };
  const decodeOnce = (entry: WalEntry, bytes: Buffer, signal?: AbortSignal) =>
    decodeWal(entry, bytes, null, key, signal).then(
      () => '',
      (err: unknown) => {
        if (err instanceof WalUndecodable) return err.userMessage;
        throw err;
      },
    );
  async function check(path: string, entry: WalEntry, signal?: AbortSignal): Promise<DecodeVerdict> {
    if (!zstdChecked) {
      zstdChecked = true;
      await findZstd().catch((err: unknown) => {
        off = `zstd cannot run here (${toUserMessage(err).replace(/\.$/, '')}): WAL was checked by its sha256 only`;
      });
    }
    if (off) return skip(off);
    if (entry.encryption === 'age' && !key) return skip(why ?? `${IDENTITY_VAR} is not set on this worker: encrypted WAL was checked by its sha256 only`);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      // Retention, or a fetch that set it aside, since the sha256 was read: not this scrub's to judge.
      if (errnoCode(err) === 'ENOENT') return { gone: true };
      return { unreadable: toUserMessage(err) };
    }
    if (createHash('sha256').update(bytes).digest('hex') !== entry.sha256) return { mismatch: true };
    try {
      const first = await decodeOnce(entry, bytes, signal);
      if (!first) {
        state.decoded += 1;
        return { ok: true };
      }
      const again = await decodeOnce(entry, bytes, signal);
      if (again !== first) return { unreadable: `it decoded differently twice (${[first, again].filter(Boolean).join('; ') || 'then whole'})` };
      return { damaged: `its bytes match their sha256, but it ${first.replace(/^WAL \S+ /, '').replace(/\.$/, '')}: it was stored damaged` };
    } catch (err) {
      if (isBotError(err) && err.code === 'canceled') return { gone: true };
      // Another key's file (a key rotated out, or a wrong identity file): skipped, the reason said once.
      if (isBotError(err) && err.code === 'decryption_failed' && /another key/i.test(err.userMessage))
        return skip(`${err.userMessage.replace(/\.$/, '')}: such WAL was checked by its sha256 only`);
      if (isBotError(err) && err.code === 'decryption_failed') return { unreadable: `it does not decrypt: ${err.userMessage.replace(/\.$/, '')}` };
      off = `decoding stopped: ${toUserMessage(err).replace(/\.$/, '')}; the rest was checked by its sha256 only`;
      return skip(off);
    }
  }
  return { check, state, why: () => why };
}

/** The key the decoding scrub reads with: the identity file restores use, or why there is none to use. */
export async function scrubKey(file: string | undefined): Promise<AgeIdentity | undefined | string> {
  if (!file) return undefined;
  return loadIdentity(file, 'The archive scrub decrypts WAL to check it decompresses').catch(
    (err: unknown) => `${toUserMessage(err).replace(/\.$/, '')}: encrypted WAL was checked by its sha256 only`,
  );
}
