import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BotError } from '../../src/errors.ts';
import { findPgTools, findZstd } from '../../src/postgres/index.ts';

/** Fake installs: a `pg_dump` that only answers --version, in a Debian-like tree. */
async function fakePgDump(dir: string, version: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'pg_dump');
  await writeFile(file, `#!/bin/sh\necho "pg_dump (PostgreSQL) ${version}"\n`);
  await chmod(file, 0o755);
}

describe('findPgTools', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'pgbb-tools-'));
    await fakePgDump(join(root, 'lib', '14', 'bin'), '14.9');
    await fakePgDump(join(root, 'lib', '16', 'bin'), '16.4');
    await fakePgDump(join(root, 'lib', '17', 'bin'), '17.2');
    await fakePgDump(join(root, 'custom'), '15.1');
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  const find = (serverMajor: number, pgBinDir?: string) => findPgTools({ serverMajor, pgBinDir, path: '', debianRoot: join(root, 'lib') });

  it('prefers the configured directory when its pg_dump is new enough', async () => {
    expect(await find(15, join(root, 'custom'))).toMatchObject({ major: 15, pgDump: join(root, 'custom', 'pg_dump') });
  });

  it("takes the server's own major, else the newest newer one", async () => {
    expect((await find(16)).major).toBe(16);
    expect((await find(15)).major).toBe(17);
    expect((await find(15)).pgRestore).toBe(join(root, 'lib', '17', 'bin', 'pg_restore'));
  });

  it('never uses a pg_dump older than the server, and says which package to install', async () => {
    await expect(find(18, join(root, 'custom'))).rejects.toMatchObject({
      code: 'pg_version_mismatch',
      userMessage: expect.stringMatching(/PostgreSQL 18 but the newest pg_dump here is version 17.*postgresql-client-18/),
    });
  });

  it('reports a missing pg_dump as pg_tool_missing', async () => {
    await expect(findPgTools({ serverMajor: 15, path: '', debianRoot: join(root, 'none') })).rejects.toMatchObject({
      code: 'pg_tool_missing',
      userMessage: expect.stringContaining('postgresql-client-15'),
    });
  });
});

/** The BotError a promise rejects with (failing the test when it resolves). */
const refusal = (p: Promise<unknown>): Promise<BotError> =>
  p.then(
    (v) => {
      throw new Error(`expected a refusal, got ${String(v)}`);
    },
    (err: unknown) => err as BotError,
  );

describe('findZstd', () => {
  it('names the Debian package when zstd is missing', async () => {
    await expect(findZstd('/nonexistent/zstd')).rejects.toMatchObject({
      code: 'pg_tool_missing',
      userMessage: expect.stringContaining('apt-get install zstd'),
    });
    // No raw detail beside the sentence: the CLI prints a detail that differs from it (QA: two lines of execa's).
    const missing = await refusal(findZstd('/nonexistent/zstd'));
    expect(missing.message).toBe(missing.userMessage);
    expect(await findZstd()).toBe('zstd');
  });

  it('tells a zstd that does not run from a missing one, in its own words', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pgbb-zstd-'));
    try {
      const broken = join(dir, 'zstd');
      await writeFile(broken, '#!/bin/sh\necho "zstd: error while loading shared libraries: libzstd.so.1" >&2\nexit 127\n');
      await chmod(broken, 0o755);
      const err = await refusal(findZstd(broken));
      expect(err.code).toBe('pg_tool_missing');
      expect(err.userMessage).toBe(
        `The zstd compressor on the backup host does not run (\`${broken} --version\`: zstd: error while loading shared libraries: libzstd.so.1): reinstall it (\`apt-get install --reinstall zstd\`).`,
      );
      expect(err.message).toBe(err.userMessage);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
