import { join } from 'node:path';
import { execa } from 'execa';
import { toUserMessage } from '../../errors.ts';
import { firstErrorLine } from '../failures.ts';
import type { BaseBackup } from './base-backup.ts';
import { fetchFromOffsite } from './offsite-fetch.ts';
import type { S3PitrStore } from './s3-pitr-store.ts';
import type { CheckResult } from './markers.ts';
import { pgCtl, recoveryEnding, type ScratchDir, serverLog, withScratchClient } from './scratch-cluster.ts';

const env = { PATH: process.env.PATH ?? '', LANG: 'C', TZ: 'UTC' };

/** pg_verifybackup of the laid-out base backup against its own backup_manifest, parsing the WAL it needs from the fetched WAL. */
async function verifyBackup(binDir: string, s: ScratchDir, signal: AbortSignal | undefined): Promise<CheckResult> {
  const name = 'base backup (pg_verifybackup)';
  const res = await execa(join(binDir, 'pg_verifybackup'), ['--wal-directory', s.walDir, s.dataDir], {
    reject: false,
    stdin: 'ignore',
    env,
    extendEnv: false,
    all: true,
    ...(signal ? { cancelSignal: signal } : {}),
  });
  if (res.exitCode === 0) return { name, ok: true, detail: 'every file matches the backup manifest, and the WAL it needs parses' };
  return { name, ok: false, detail: `pg_verifybackup failed: ${firstErrorLine(String(res.all ?? '')) || `exit ${res.exitCode}`}` };
}

/**
 * Starts the scratch server on the laid-out cluster and waits until it has promoted (recovery done), or stopped: the
 * server's log then says how recovery ended. PostgreSQL's "recovery ended before configured recovery target was
 * reached" is a failure. Returns the role it could connect as (the source's bootstrap role `postgres`, else the
 * target's own role), or none when recovery did not finish.
 */
async function startAndReplay(o: {
  s: ScratchDir;
  binDir: string;
  port: number;
  users: string[];
  database: string;
  timeoutMs: number;
  signal: AbortSignal | undefined;
}): Promise<{ check: CheckResult; user: string | null }> {
  const name = 'recovery reached its target';
  // With hot_standby off, pg_ctl -w returns once the server accepts connections: after promotion, or when it stopped.
  const started = await pgCtl(o.s, o.binDir, ['-D', o.s.dataDir, '-l', o.s.log, '-w', '-t', String(Math.ceil(o.timeoutMs / 1000)), 'start'], o.signal);
  o.signal?.throwIfAborted();
  const ending = recoveryEnding(await serverLog(o.s));
  if (started.exitCode !== 0) {
    const detail = ending.reached
      ? `the server stopped after "${ending.said}" without promoting`
      : ending.said.startsWith('recovery ended before')
        ? `PostgreSQL: "${ending.said}": the archive does not reach the moment asked`
        : `the scratch server stopped during recovery: ${ending.said}${/timed out|did not start in time/i.test(started.stdout + started.stderr) ? ` (not finished after ${Math.round(o.timeoutMs / 60_000)} minutes)` : ''}`;
    return { check: { name, ok: false, detail }, user: null };
  }
  // pg_ctl may return while the server still refuses connections: poll until it has promoted, or is gone.
  const end = Date.now() + o.timeoutMs;
  for (;;) {
    o.signal?.throwIfAborted();
    for (const user of o.users) {
      const inRecovery = await withScratchClient(
        o.s,
        o.port,
        user,
        o.database,
        async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r,
      ).catch(() => null);
      if (inRecovery === null || inRecovery) continue;
      const said = recoveryEnding(await serverLog(o.s));
      return said.reached
        ? { check: { name, ok: true, detail: `the server says: "${said.said}"` }, user }
        : { check: { name, ok: false, detail: `the server promoted but its log never says it stopped at the target: ${said.said}` }, user };
    }
    if ((await pgCtl(o.s, o.binDir, ['-D', o.s.dataDir, 'status'])).exitCode === 3) {
      const said = recoveryEnding(await serverLog(o.s));
      return { check: { name, ok: false, detail: `the scratch server stopped: ${said.said}` }, user: null };
    }
    if (Date.now() > end)
      return {
        check: {
          name,
          ok: false,
          detail: `the recovered server accepted none of the roles ${o.users.join(', ')}, or never promoted, in ${Math.round(o.timeoutMs / 60_000)} minutes`,
        },
        user: null,
      };
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** pg_amcheck on every database of the recovered cluster (heap and btree; amcheck installed where missing). */
async function amcheck(
  binDir: string,
  s: ScratchDir,
  port: number,
  user: string,
  heapallindexed: boolean,
  signal: AbortSignal | undefined,
): Promise<CheckResult> {
  const name = 'pg_amcheck, every database';
  const args = ['-h', s.dir, '-p', String(port), '-U', user, '--no-password', '--all', '--install-missing', ...(heapallindexed ? ['--heapallindexed'] : [])];
  const res = await execa(join(binDir, 'pg_amcheck'), args, {
    reject: false,
    stdin: 'ignore',
    env,
    extendEnv: false,
    ...(signal ? { cancelSignal: signal } : {}),
  });
  if (res.exitCode === 0) return { name, ok: true, detail: `clean${heapallindexed ? ' (with --heapallindexed)' : ''}` };
  const out = String(res.stdout).trim();
  if (res.exitCode === 2 && out) {
    const objects = out.split('\n').filter((l) => l.trim() && !l.startsWith(' '));
    return { name, ok: false, detail: `corruption: ${objects.slice(0, 5).join('; ')}${objects.length > 5 ? ` (+${objects.length - 5} more)` : ''}` };
  }
  return { name, ok: null, detail: `not run: pg_amcheck failed (${firstErrorLine(String(res.stderr)) || `exit ${res.exitCode}`})` };
}

export const runScratchChecks = { verifyBackup, amcheck };
export { startAndReplay };

/**
 * The archive in S3 (its copy, or with `primary` the archive itself) into `root` (offsite-fetch.ts), said as a check;
 * null (and a failed check) when it cannot be fetched.
 */
export async function fetchOffsite(
  remote: S3PitrStore,
  root: string,
  at: Date,
  checks: CheckResult[],
  primary: boolean,
  baseId?: string,
  signal?: AbortSignal,
): Promise<{ root: string; base: BaseBackup } | null> {
  const name = primary ? 'archive in S3' : 'off-site copy';
  try {
    const got = await fetchFromOffsite({ root, remote, at, baseId, signal, markDamaged: primary });
    checks.push({
      name,
      ok: true,
      detail: `base backup ${got.base.id} and ${got.segments} WAL file(s) fetched from ${remote.describe()}, every sha256 matching`,
    });
    return { root, base: got.base };
  } catch (err) {
    checks.push({ name, ok: false, detail: `could not be fetched from ${remote.describe()}: ${toUserMessage(err)}` });
    return null;
  }
}
