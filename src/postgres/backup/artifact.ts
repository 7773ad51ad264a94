import { AGE_SUFFIX, checkRecipients, createEncryptStream } from '../../crypto/age.ts';
import type { AgeEngine } from '../../crypto/age-cli.ts';
import type { Artifact } from '../../storage/index.ts';
import type { ArtifactWriter, Storage } from '../../storage/index.ts';
import type { ToolPipeOptions } from './tool-chain.ts';
import { runToolIntoZstd } from './tool-pipe.ts';

export interface DumpToArtifactOptions {
  storage: Storage;
  target: string;
  backupId: string;
  /** The unencrypted name (`database.pgdump.zst`); an encrypted artifact gets `.age` appended. */
  file: string;
  /** age recipients to encrypt to, after compression; null stores the compressed stream as it is. */
  encryption?: { recipients: string[] } | null | undefined;
  /** Who encrypts (default: age-encryption in this process); see src/crypto/age-cli.ts. */
  ageEngine?: AgeEngine | undefined;
  /**
   * One more recipient, not recorded in the manifest: the backup's own read-back key (backup-encryption.ts), so the
   * stored file can be read back by a worker that holds no configured secret.
   */
  readBackRecipient?: string | undefined;
  role: Artifact['role'];
  format: Artifact['format'];
  level: number;
  command: string;
  args: string[];
  env: Record<string, string>;
  zstd: string;
  rawCounting?: 'zstd' | 'node';
  signal?: AbortSignal | undefined;
  onProgress?: ToolPipeOptions['onProgress'];
}

export interface DumpedArtifact {
  /** `rawBytes` is null when zstd's summary could not be read; the caller finds it another way. */
  artifact: Omit<Artifact, 'rawBytes'> & { rawBytes: number | null };
  /** Not yet committed: the caller commits all artifacts once every step has succeeded. */
  writer: ArtifactWriter;
  toolStderr: string;
}

/**
 * Runs one pg tool into one zstd-compressed (and, given recipients, age-encrypted) artifact. On failure the
 * partial file is removed before rethrowing.
 */
export async function dumpToArtifact(o: DumpToArtifactOptions): Promise<DumpedArtifact> {
  const recipients = o.encryption && o.encryption.recipients.length > 0 ? [...o.encryption.recipients] : null;
  const to = recipients ? [...recipients, ...(o.readBackRecipient ? [o.readBackRecipient] : [])] : null;
  // Checked before the writer exists: recipients the library refuses fail the backup before a file does.
  if (to) checkRecipients(to);
  const cli = to && o.ageEngine?.kind === 'cli' ? { command: o.ageEngine.path, args: to.flatMap((r) => ['-r', r]) } : undefined;
  const encrypt = to && !cli ? await createEncryptStream(to) : undefined;
  const file = recipients ? `${o.file}${AGE_SUFFIX}` : o.file;
  const writer = await o.storage.createArtifactWriter(o.target, o.backupId, file);
  try {
    const r = await runToolIntoZstd({
      encryptCommand: cli,
      encrypt,
      command: o.command,
      args: o.args,
      env: o.env,
      zstd: o.zstd,
      level: o.level,
      destination: writer.stream,
      destinationPath: writer.path,
      signal: o.signal,
      rawCounting: o.rawCounting ?? 'zstd',
      onProgress: o.onProgress,
    });
    return {
      artifact: {
        file,
        role: o.role,
        format: o.format,
        compression: 'zstd',
        compressionLevel: o.level,
        encryption: recipients ? { scheme: 'age', recipients } : null,
        bytes: r.bytes,
        sha256: r.sha256,
        rawBytes: r.rawBytes,
      },
      writer,
      toolStderr: r.toolStderr,
    };
  } catch (err) {
    await writer.abort().catch(() => undefined);
    throw err;
  }
}
