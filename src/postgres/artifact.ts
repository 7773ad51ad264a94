import type { Artifact } from '../storage/manifest.ts';
import type { ArtifactWriter, Storage } from '../storage/types.ts';
import { runToolIntoZstd, type ToolPipeOptions } from './tool-pipe.ts';

export interface DumpToArtifactOptions {
  storage: Storage;
  target: string;
  backupId: string;
  file: string;
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

/** Runs one pg tool into one zstd-compressed artifact. On failure the partial file is removed before rethrowing. */
export async function dumpToArtifact(o: DumpToArtifactOptions): Promise<DumpedArtifact> {
  const writer = await o.storage.createArtifactWriter(o.target, o.backupId, o.file);
  try {
    const r = await runToolIntoZstd({
      command: o.command,
      args: o.args,
      env: o.env,
      zstd: o.zstd,
      level: o.level,
      destination: writer.stream,
      signal: o.signal,
      rawCounting: o.rawCounting ?? 'zstd',
      onProgress: o.onProgress,
    });
    return {
      artifact: {
        file: o.file,
        role: o.role,
        format: o.format,
        compression: 'zstd',
        compressionLevel: o.level,
        encryption: null,
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
