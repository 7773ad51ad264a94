import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findNativeTools } from '../../../src/postgres/backup/native-pipe.ts';
import { parseZstdSummary, ToolPipeError } from '../../../src/postgres/backup/tool-chain.ts';
import { runToolIntoZstd } from '../../../src/postgres/backup/tool-pipe.ts';

const sink = () =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });

describe('runToolIntoZstd', () => {
  it.each(['zstd', 'node'] as const)('fails instead of hanging when the tool cannot start (%s counting)', async (rawCounting) => {
    const err = await runToolIntoZstd({
      command: '/nonexistent/pg_dumpall',
      args: [],
      env: {},
      zstd: 'zstd',
      level: 1,
      destination: sink(),
      rawCounting,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolPipeError);
    expect((err as ToolPipeError).stage).toBe('tool');
    expect((err as ToolPipeError).exit).toMatch(/ENOENT/);
  });

  it.each(['zstd', 'node'] as const)('counts raw and stored bytes and hashes what it stored (%s counting)', async (rawCounting) => {
    const r = await runToolIntoZstd({
      command: 'head',
      args: ['-c', '3000000', '/dev/zero'],
      env: {},
      zstd: 'zstd',
      level: 3,
      destination: sink(),
      rawCounting,
    });
    expect(r.rawBytes).toBe(3_000_000);
    expect(r.bytes).toBeGreaterThan(0);
    expect(r.bytes).toBeLessThan(10_000);
    expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('runToolIntoZstd into a local file (tee | openssl or sha256sum, nothing through Node)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-native-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  // The writer's own stream: the native chain must leave it empty and end it.
  const unused = () => {
    const s = new PassThrough();
    let wrote = 0;
    s.on('data', (c: Buffer) => (wrote += c.length));
    return { s, wrote: () => wrote };
  };

  // The writer: perl where there is one, coreutils' tee otherwise (perl-stages.ts); both are held to the same.
  const writers = [
    ['perl', 'perl'],
    ['tee', null],
  ] as const;

  it.each(writers)('writes the file itself, hashes exactly what it wrote, and ends the writer stream empty (%s)', async (name, perl) => {
    const path = join(dir, `ok-${name}.zst.partial`);
    await writeFile(path, '', { mode: 0o600 });
    const w = unused();
    const r = await runToolIntoZstd({
      command: 'head',
      args: ['-c', '3000000', '/dev/urandom'],
      env: {},
      zstd: 'zstd',
      level: 1,
      destination: w.s,
      destinationPath: path,
      perl,
    });
    const stored = await readFile(path);
    expect(r.bytes).toBe(stored.length);
    expect(r.sha256).toBe(createHash('sha256').update(stored).digest('hex'));
    expect(r.rawBytes).toBe(3_000_000);
    await finished(w.s);
    expect(w.wrote()).toBe(0);
  });

  it('hashes with OpenSSL when it is installed (SHA extensions), and sha256sum gives the same digest', async () => {
    // .ci/run installs openssl; sha256sum is the fallback where it is missing.
    expect(await findNativeTools()).toEqual({ command: 'openssl', args: ['dgst', '-sha256', '-r'] });
    const digests: string[] = [];
    for (const hasher of [
      { command: 'openssl', args: ['dgst', '-sha256', '-r'] },
      { command: 'sha256sum', args: ['-b'] },
    ]) {
      const path = join(dir, `${hasher.command}.zst.partial`);
      await writeFile(path, '', { mode: 0o600 });
      // Deterministic input: the same bytes go to both chains, so the stored files and digests must agree.
      const r = await runToolIntoZstd({
        command: 'head',
        args: ['-c', '2000000', '/dev/zero'],
        env: {},
        zstd: 'zstd',
        level: 1,
        destination: unused().s,
        destinationPath: path,
        hasher,
      });
      expect(r.sha256).toBe(
        createHash('sha256')
          .update(await readFile(path))
          .digest('hex'),
      );
      digests.push(r.sha256);
    }
    expect(digests[0]).toBe(digests[1]);
  });

  it('fails the backup when the hashing command fails', async () => {
    const path = join(dir, 'nohash.zst.partial');
    await writeFile(path, '', { mode: 0o600 });
    const err = await runToolIntoZstd({
      command: 'head',
      args: ['-c', '100000', '/dev/urandom'],
      env: {},
      zstd: 'zstd',
      level: 1,
      destination: unused().s,
      destinationPath: path,
      hasher: { command: 'openssl', args: ['dgst', '-no-such-digest'] },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolPipeError);
    expect((err as ToolPipeError).stage).toBe('write');
    expect((err as ToolPipeError).message).toMatch(/hashing the artifact failed/);
  });

  it.each(writers)('reports a full disk as a write failure with ENOSPC as its cause (%s)', async (_name, perl) => {
    const err = await runToolIntoZstd({
      command: 'head',
      args: ['-c', '3000000', '/dev/urandom'],
      env: {},
      zstd: 'zstd',
      level: 1,
      destination: unused().s,
      destinationPath: '/dev/full',
      perl,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolPipeError);
    expect((err as ToolPipeError).stage).toBe('write');
    expect((err as ToolPipeError).message).toMatch(/^writing the artifact failed: .*No space left on device$/);
    expect(((err as ToolPipeError).cause as NodeJS.ErrnoException).code).toBe('ENOSPC');
  });

  it('fails when the tool fails, even though zstd ends a well-formed stream', async () => {
    const path = join(dir, 'tool.zst.partial');
    await writeFile(path, '', { mode: 0o600 });
    const err = await runToolIntoZstd({
      command: 'sh',
      args: ['-c', 'head -c 100000 /dev/urandom; exit 3'],
      env: {},
      zstd: 'zstd',
      level: 1,
      destination: unused().s,
      destinationPath: path,
    }).catch((e: unknown) => e);
    expect((err as ToolPipeError).stage).toBe('tool');
    expect((err as ToolPipeError).exit).toBe('exit code 3');
  });

  it('stops every stage when canceled', async () => {
    const path = join(dir, 'cancel.zst.partial');
    await writeFile(path, '', { mode: 0o600 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const err = await runToolIntoZstd({
      command: 'cat',
      args: ['/dev/urandom'],
      env: {},
      zstd: 'zstd',
      level: 1,
      destination: unused().s,
      destinationPath: path,
      signal: ac.signal,
    }).catch((e: unknown) => e);
    expect((err as ToolPipeError).stage).toBe('canceled');
  });
});

describe('parseZstdSummary', () => {
  it('reads the raw size from zstd 1.5 and 1.4 summaries', () => {
    expect(parseZstdSummary('/*stdin*\\            : 12.02%   (314777504 B => 37841148 B, /*stdout*\\) \n')).toBe(314777504);
    expect(parseZstdSummary('/*stdin*\\            : 31.09%   (  10000 =>   3109 bytes, /*stdout*\\) \n')).toBe(10000);
    expect(parseZstdSummary('/*stdin*\\ : 12.02%   ( 300 MiB => 36.1 MiB, /*stdout*\\)')).toBeNull();
  });
});
