import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type Options } from 'execa';
import { RssWatcher, filesUnder, fsyncAll, totalBytes, type ProcPeak } from './measure.ts';

/**
 * The leg registry. A leg is one way of producing a backup of the benchmark database; run.ts times every leg
 * in alternating rounds. Later legs (restore test vs bare pg_restore, encryption) are one more entry here.
 */

/** What run.ts needs from a child to stop it on Ctrl-C (execa's generic types do not narrow to one). */
export interface Tracked extends PromiseLike<unknown> {
  kill(signal?: NodeJS.Signals): unknown;
}

export interface LegContext {
  /** pg_dump etc. matched to the server's major version. */
  binDir: string;
  /** Child environment for libpq tools (PGHOST, PGDATABASE, PGPASSFILE…): no secret ever goes in argv. */
  pgEnv: Record<string, string>;
  databaseUrl: string;
  /** Empty directory for this run's output; everything in it after the run counts as output bytes. */
  outDir: string;
  repoRoot: string;
  /** Extra environment for the CLI (e.g. REDIS_URL of a throwaway Redis). */
  cliEnv: Record<string, string>;
  /** Lets run.ts kill whatever is running on Ctrl-C. */
  track(sub: Tracked): void;
}

/** Thrown by a leg that cannot run here (yet): reported as SKIP, not as a failure of what it measures. */
export class LegUnavailable extends Error {}

export interface LegResult {
  ms: number;
  bytes: number;
  /** Peak RSS of the leg's main process, where there is one (the CLI's node). */
  peakRssKb?: number;
  /** Every process seen during the run with its own peak. */
  processes: ProcPeak[];
}

export interface Leg {
  id: string;
  title: string;
  command: string;
  /** A reason to skip, or undefined when the leg can run. */
  unavailable?(ctx: LegContext): string | undefined;
  run(ctx: LegContext): Promise<LegResult>;
}

function tool(ctx: LegContext, file: string, args: string[], options: Options = {}) {
  const sub = execa(file, args, { env: ctx.pgEnv, extendEnv: false, stdin: 'ignore', ...options });
  ctx.track(sub);
  return sub;
}

/** Times `body` through to fsynced output and sums the output bytes; watches RSS meanwhile. */
async function measured(
  ctx: LegContext,
  descendants: boolean,
  body: (watcher: RssWatcher) => Promise<number | undefined>,
): Promise<LegResult> {
  const watcher = new RssWatcher(descendants).start();
  const t0 = performance.now();
  let mainPid: number | undefined;
  let files: string[];
  let ms: number;
  let processes: ProcPeak[];
  try {
    mainPid = await body(watcher);
    files = await filesUnder(ctx.outDir);
    await fsyncAll(files);
    ms = performance.now() - t0;
  } finally {
    processes = await watcher.stop();
  }
  const peak = watcher.peakOf(mainPid);
  return { ms, bytes: await totalBytes(files), processes, ...(peak === undefined ? {} : { peakRssKb: peak }) };
}

const bare: Leg = {
  id: 'A',
  title: 'bare pg_dump (floor)',
  command: 'pg_dump -Fc -Z0 -f FILE',
  run: (ctx) =>
    measured(ctx, false, async (w) => {
      const dump = tool(ctx, join(ctx.binDir, 'pg_dump'), ['-Fc', '-Z0', '-f', join(ctx.outDir, 'db.pgdump')]);
      w.watch(dump.pid);
      await dump;
      return undefined;
    }),
};

const seed: Leg = {
  id: 'B',
  title: 'seed recipe',
  command: 'pg_dump -Fc -Z9 -f FILE && gzip FILE',
  run: (ctx) =>
    measured(ctx, false, async (w) => {
      const file = join(ctx.outDir, 'db.pgdump');
      const dump = tool(ctx, join(ctx.binDir, 'pg_dump'), ['-Fc', '-Z9', '-f', file]);
      w.watch(dump.pid);
      await dump;
      const gzip = tool(ctx, 'gzip', [file]);
      w.watch(gzip.pid);
      await gzip;
      return undefined;
    }),
};

const rawPipeline: Leg = {
  id: "C'",
  title: 'raw pipeline (reference)',
  command: 'pg_dump -Fc -Z0 | zstd -T0 -1 > FILE (execa pipe)',
  run: (ctx) =>
    measured(ctx, false, async (w) => {
      // buffer:false on the source: execa would otherwise also keep every byte of the dump in memory.
      // Literal options (not tool()) so execa's types keep both ends pipeable.
      const env = ctx.pgEnv;
      const dump = execa(join(ctx.binDir, 'pg_dump'), ['-Fc', '-Z0'], { env, extendEnv: false, stdin: 'ignore', buffer: { stdout: false } });
      const zstd = execa('zstd', ['-T0', '-1', '-q', '-o', join(ctx.outDir, 'db.pgdump.zst')], { env, extendEnv: false });
      ctx.track(dump);
      ctx.track(zstd);
      w.watch(dump.pid);
      w.watch(zstd.pid);
      await dump.pipe(zstd);
      return undefined;
    }),
};

const cli: Leg = {
  id: 'C',
  title: "this project's CLI",
  command: 'node bin/pg-backup-bot.js backup',
  unavailable: (ctx) =>
    existsSync(join(ctx.repoRoot, 'src', 'main.ts')) ? undefined : 'CLI not available yet (src/main.ts does not exist)',
  run: (ctx) =>
    measured(ctx, true, async (w) => {
      const env = { ...process.env, ...ctx.cliEnv, DATABASE_URL: ctx.databaseUrl, BACKUP_DIR: ctx.outDir, LOG_LEVEL: 'warn' };
      const sub = execa(process.execPath, [join(ctx.repoRoot, 'bin', 'pg-backup-bot.js'), 'backup'], {
        cwd: ctx.repoRoot,
        env,
        extendEnv: false,
        stdin: 'ignore',
        reject: false,
      });
      ctx.track(sub);
      w.watch(sub.pid);
      const res = await sub;
      if (res.exitCode !== 0 || res.signal) {
        const said = `${res.stderr}\n${res.stdout}`.trim().slice(-600);
        // While the lead is still writing the CLI, a missing module or verb means "not there yet", not "slow".
        const missing = /Cannot find module[^\n]*|Unknown command "backup"/.exec(res.stderr)?.[0];
        if (missing) throw new LegUnavailable(`CLI not available yet (${missing.replaceAll(ctx.repoRoot, '')})`);
        throw new Error(`exit ${res.exitCode ?? res.signal}: ${said || '(no output)'}`);
      }
      // A backup directory without manifest.json is unfinished by contract: not a result to time.
      const files = await filesUnder(ctx.outDir);
      if (!files.some((f) => f.endsWith('/manifest.json'))) throw new Error(`exit 0 but no manifest.json under BACKUP_DIR (${files.length} files)`);
      return sub.pid;
    }),
};

/** Order matters only for display; rounds rotate it so no leg always runs first. */
export const LEGS: Leg[] = [bare, seed, cli, rawPipeline];
