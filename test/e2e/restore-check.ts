import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { countObjects, countRows } from '../../src/postgres/counts.ts';
import { withPgEnv } from '../../src/postgres/connection.ts';
import { findPgTools } from '../../src/postgres/tools.ts';
import type { Manifest } from '../../src/storage/manifest.ts';

/** An encrypted artifact (`….age`) needs the identity file, as an operator would use it with the age CLI. */
function ageKey(path: string, identityFile: string | undefined): string | null {
  if (!path.endsWith('.age')) return null;
  if (!identityFile) throw new Error(`${path} is encrypted: pass the identity file`);
  return identityFile;
}

/** `[age -d -i key |] zstd -dc <artifact> | pg_restore --list`: the table of contents, as an operator would check it. */
export async function listArtifact(path: string, serverMajor: number, identityFile?: string): Promise<string> {
  const tools = await findPgTools({ serverMajor });
  // pg_restore --list stops after the table of contents; decompress to a file so zstd never meets a closed pipe.
  const dir = await mkdtemp(join(tmpdir(), 'pgbb-toc-'));
  try {
    const key = ageKey(path, identityFile);
    if (key) await execa('age', ['-d', '-i', key, '-o', join(dir, 'dump.zst'), path]);
    await execa('zstd', ['-dq', key ? join(dir, 'dump.zst') : path, '-o', join(dir, 'dump')]);
    const { stdout } = await execa(tools.pgRestore, ['--list', join(dir, 'dump')]);
    return stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Restores an artifact into `dbUrl` the strict way (`--exit-on-error`) and counts what arrived. */
export async function restoreAndCount(artifactPath: string, dbUrl: string, serverMajor: number, identityFile?: string) {
  const tools = await findPgTools({ serverMajor });
  const key = ageKey(artifactPath, identityFile);
  const decompressed = () => (key ? execa('age', ['-d', '-i', key, artifactPath]).pipe('zstd', ['-dc']) : execa('zstd', ['-dc', artifactPath]));
  await withPgEnv(dbUrl, (env) =>
    decompressed().pipe(tools.pgRestore, ['--no-owner', '--exit-on-error', '--single-transaction', '-d', env.PGDATABASE ?? ''], {
      env,
      extendEnv: false,
    }),
  );
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    return { tables: await countRows(client), objects: await countObjects(client) };
  } finally {
    await client.end();
  }
}

export function artifactPath(backupDir: string, m: Manifest, role: 'database' | 'globals' = 'database'): string {
  const a = m.artifacts.find((x) => x.role === role);
  if (!a) throw new Error(`backup ${m.backupId} has no ${role} artifact`);
  return join(backupDir, m.target, m.backupId, a.file);
}
