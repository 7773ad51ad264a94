import type { TargetConfig } from '../../config.ts';
import { checkRecipients, createDecryptStream, generateEphemeralKey, type AgeIdentity } from '../../crypto/age.ts';
import { ENCRYPTION_ADVICE } from '../../crypto/advice.ts';
import { BotError, isBotError } from '../../errors.ts';
import type { Storage } from '../../storage/index.ts';
import { verifyArtifact, type VerifyMode, type VerifyResult } from './verify.ts';

/** What a backup is told about encryption: the recipients, and whether the config opted out (`encryption: none`). */
export type BackupEncryptionOption = { recipients: string[]; optedOut?: boolean } | null;

/**
 * The policy, decided before anything is dumped: recipients → every artifact is encrypted to them (even if the
 * file also says `encryption: none`: a key that is configured is used). No recipients → a production target
 * refuses, unless the config opted out; a staging target may go unencrypted.
 */
export function backupEncryption(target: TargetConfig, e: BackupEncryptionOption): { recipients: string[] } | null {
  const recipients = e?.recipients ?? [];
  if (recipients.length > 0) {
    checkRecipients(recipients);
    return { recipients: [...recipients] };
  }
  if (target.environment === 'production' && !e?.optedOut) {
    throw new BotError('encryption_required', `Refusing an unencrypted backup of ${target.name} (production): ${ENCRYPTION_ADVICE}.`);
  }
  return null;
}

/**
 * How an encrypted backup is read back by a worker that holds no secret key: the database artifact is also
 * encrypted to a key pair made for this one backup and kept in memory only. After the file is stored, it is read
 * back through that key — `age -d | zstd -dc | pg_restore --list`, the same check as an unencrypted backup gets,
 * on the bytes as stored — and the key is dropped with the backup's state. The file then names one recipient
 * more than the manifest (a stanza nobody can open any more); age stanzas do not reveal whose key they are for.
 *
 * Chosen over checking the compressed stream on its way into age: that needs a tee of the stream, which either
 * runs the stream through Node once more (measured: about 10 % of a backup's time) or needs a FIFO, and it
 * never reads the stored file.
 */
export function readBackKey(): Promise<{ identity: AgeIdentity; recipient: string }> {
  return generateEphemeralKey("the backup's read-back key");
}

export async function readBackEncrypted(o: {
  storage: Storage;
  target: string;
  backupId: string;
  file: string;
  identity: AgeIdentity;
  zstd: string;
  pgRestore: string;
  mode: VerifyMode;
  signal?: AbortSignal | undefined;
}): Promise<VerifyResult> {
  const stored = await o.storage.openArtifact(o.target, o.backupId, o.file);
  let plain: Awaited<ReturnType<typeof createDecryptStream>>;
  try {
    plain = await createDecryptStream(stored, o.identity, []);
  } catch (err) {
    const why = isBotError(err) ? err.userMessage : 'its age header is unreadable';
    throw new BotError('pg_dump_failed', `The backup was written but could not be read back (it does not decrypt: ${why}); it was not kept.`, { cause: err });
  }
  try {
    return await verifyArtifact({ source: plain, zstd: o.zstd, pgRestore: o.pgRestore, mode: o.mode, signal: o.signal });
  } finally {
    stored.destroy();
  }
}

/**
 * Reads the stored database artifact back before its manifest is written: through the backup's read-back key when
 * it is encrypted (`identity`), as it is otherwise. Without zstd's summary the raw size comes from reading everything
 * back ('full'); else `mode`, by default 'list' (verify.ts).
 */
export async function readBack(o: {
  storage: Storage;
  target: string;
  backupId: string;
  artifact: { file: string; rawBytes: number | null };
  identity: AgeIdentity | undefined;
  zstd: string;
  pgRestore: string;
  mode: VerifyMode | undefined;
  signal?: AbortSignal | undefined;
}): Promise<VerifyResult> {
  const { storage, target, backupId, identity } = o;
  const { file } = o.artifact;
  const mode: VerifyMode = o.artifact.rawBytes === null ? 'full' : (o.mode ?? 'list');
  const verify = { zstd: o.zstd, pgRestore: o.pgRestore, mode, signal: o.signal };
  return identity
    ? await readBackEncrypted({ ...verify, storage, target, backupId, file, identity })
    : await verifyArtifact({ ...verify, source: await storage.openArtifact(target, backupId, file) });
}
