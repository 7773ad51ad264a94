import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { findPostgresBinDir } from '../../../src/dev/ephemeral.ts';
import { makeScratchDir, removeLeftoverScratch } from '../../../src/postgres/pitr/scratch-cluster.ts';

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/** A worker killed mid-test leaves its scratch cluster running: the next worker to start stops and removes it. */
describe('removeLeftoverScratch', () => {
  it('stops a leftover scratch server and removes its directory, and keeps the scratch of a test still running', async () => {
    const bin = await findPostgresBinDir();
    const owner = `q${String(process.pid).padStart(6, '0').slice(-6)}`;
    const left = await makeScratchDir(`${owner}-${'a'.repeat(12)}`);
    const kept = await makeScratchDir(`${owner}-${'b'.repeat(12)}`);
    // Another bot's (another owner's) scratch on the same host is never touched.
    const other = await makeScratchDir(`qother0-${'a'.repeat(12)}`);
    try {
      const as = (cmd: string, args: string[]) =>
        execa(left.user.prefix[0] ?? cmd, [...left.user.prefix.slice(1), ...(left.user.prefix.length ? [cmd] : []), ...args]);
      if (left.user.uid !== undefined) await execa('chown', [`${left.user.uid}:${left.user.gid}`, left.dir]);
      await as(join(bin, 'initdb'), ['-D', left.dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
      await writeFile(join(left.dataDir, 'postgresql.auto.conf'), `listen_addresses = ''\nunix_socket_directories = '${left.dir}'\nport = 54999\n`);
      if (left.user.uid !== undefined) await execa('chown', [`${left.user.uid}:${left.user.gid}`, join(left.dataDir, 'postgresql.auto.conf')]);
      await as(join(bin, 'pg_ctl'), ['-D', left.dataDir, '-l', left.log, '-w', 'start']);
      const pid = Number((await execa('head', ['-1', join(left.dataDir, 'postmaster.pid')])).stdout);
      const removed = await removeLeftoverScratch(owner, new Set([`${owner}-${'b'.repeat(12)}`]));
      expect(removed).toEqual([left.dir.split('/').at(-1)]);
      expect(await exists(left.dir)).toBe(false);
      // Gone, or a zombie no one has reaped yet: not running either way.
      const state = await execa('ps', ['-o', 'stat=', '-p', String(pid)], { reject: false });
      expect(state.stdout.trim(), `postmaster ${pid} still runs`).toMatch(/^(Z.*)?$/);
      expect(await exists(kept.dir)).toBe(true);
      expect(await exists(other.dir)).toBe(true);
    } finally {
      await other.remove();
      await kept.remove();
      await left.remove();
    }
  }, 60_000);
});
