import type { Readable } from 'node:stream';
import { type AgeIdentity, checkIdentityOpens, createDecryptStream, IDENTITY_VAR, loadIdentity } from '../../crypto/age.ts';
import { BotError } from '../../errors.ts';
import type { Artifact, Manifest } from '../../storage/index.ts';
import type { Storage } from '../../storage/index.ts';

/**
 * Restores of encrypted backups: the identity (secret key) file is read only here, on the restoring side, and
 * only for a backup that needs it. Checksums are taken on the stored, encrypted bytes before any of this.
 */

const encryptedArtifacts = (m: Manifest) => m.artifacts.filter((a) => a.encryption !== null);

/** Reads BACKUP_ENCRYPTION_IDENTITY_FILE when the backup has an encrypted artifact; undefined when none is. */
export async function identityFor(m: Manifest, identityFile: string | undefined): Promise<AgeIdentity | undefined> {
  if (encryptedArtifacts(m).length === 0) return undefined;
  return loadIdentity(identityFile, `Backup ${m.backupId} is encrypted with age`);
}

/**
 * Opens the header of every encrypted artifact with the identity: a wrong key fails here with one sentence naming
 * the recipients, before a scratch database is created or anything restored.
 */
export async function checkIdentityOpensBackup(m: Manifest, storage: Storage, identity: AgeIdentity | undefined): Promise<void> {
  for (const a of encryptedArtifacts(m)) {
    await checkIdentityOpens(await storage.openArtifact(m.target, m.backupId, a.file), needIdentity(m, identity), a.encryption?.recipients ?? []);
  }
}

function needIdentity(m: Manifest, identity: AgeIdentity | undefined): AgeIdentity {
  if (!identity) throw new BotError('decryption_failed', `Backup ${m.backupId} is encrypted with age, but no identity was given: set ${IDENTITY_VAR}.`);
  return identity;
}

/** The stored artifact as zstd expects it: decrypted on the fly when it is encrypted. */
export async function plaintextOf(m: Manifest, a: Artifact, source: Readable, identity: AgeIdentity | undefined): Promise<Readable> {
  if (!a.encryption) return source;
  try {
    return await createDecryptStream(source, needIdentity(m, identity), a.encryption.recipients);
  } catch (err) {
    source.destroy();
    throw err;
  }
}
