import type { TargetConfig } from '../config.ts';
import { checkRecipients, readAgeStanzaCount } from '../crypto/age.ts';
import { BotError } from '../errors.ts';
import type { Storage } from '../storage/types.ts';
import type { Verifier, VerifyResult } from './verify.ts';

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
    throw new BotError(
      'encryption_required',
      `Refusing an unencrypted backup of ${target.name} (production): set BACKUP_ENCRYPTION_RECIPIENT to an age public key, or say \`encryption: none\` in the config file.`,
    );
  }
  return null;
}

/**
 * The read-back of an encrypted database artifact, which a worker without the secret key can do: the verifier fed
 * with the compressed stream before encryption (see verify.ts) must have read the archive, and the stored file
 * must be an age file with one recipient stanza per recipient.
 */
export async function checkEncryptedBackup(o: {
  verifier: Verifier;
  storage: Storage;
  target: string;
  backupId: string;
  file: string;
  recipients: string[];
}): Promise<VerifyResult> {
  const checked = await o.verifier.result;
  const stanzas = await readAgeStanzaCount(await o.storage.openArtifact(o.target, o.backupId, o.file));
  if (stanzas !== o.recipients.length) {
    const found = stanzas === null ? 'no age header' : `${stanzas} recipient stanzas for ${o.recipients.length} recipients`;
    throw new BotError('pg_dump_failed', `The backup was written but its stored file does not read back as age-encrypted (${found}); it was not kept.`);
  }
  return checked;
}
