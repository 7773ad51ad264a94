import { type ChildProcess, fork } from 'node:child_process';
import { hostname } from 'node:os';
import { formatDuration } from './format.ts';
import type { Logger } from './logger.ts';
import { yieldCpu } from './postgres/index.ts';

/**
 * `all` (what `npm start` runs): the bot answers Slack in this process and the workers run in a child process it
 * supervises. Apart, a backup's spawns (each fork of a big process blocks its event loop for 8–15 ms) and the dump
 * streaming through its encryption do not sit in front of the acks (docs/benchmarks.md, leg K).
 *
 * The child is `pg-backup-bot worker` with PGBB_SUPERVISED=1: no HTTP server of its own, a heartbeat over the IPC
 * channel every 2 s, and it stops gracefully when that channel closes (this process died, even by SIGKILL).
 * A child that dies is started again (1 s, doubling to 60 s while it keeps dying) and the channel is told; while it
 * is down, or silent for 10 s, /healthz answers 503; silent for 60 s (hung, stopped), it is killed and started again.
 */

/** What the child sends up the IPC channel. */
export type WorkerReport = { type: 'ready' } | { type: 'heartbeat'; ok: boolean };

export const HEARTBEAT_MS = 2_000;
const SILENT_MS = 10_000;
/** Deaths further apart than this are not a crash loop: the backoff starts again from 1 s. */
const CALM_MS = 10 * 60_000;
/** How long a child that ended gracefully is given before it counts as a death (see the exit handler). */
const GRACEFUL_WAIT_MS = 1_000;

export interface WorkerSupervisor {
  /** The child is up, has reported ready, and its last heartbeat (≤ 10 s old) said every worker runs. */
  healthy(): boolean;
  /** The child's pid while one runs. */
  pid(): number | null;
  /** SIGTERM to the child (its graceful stop: running jobs get up to 30 s), no restart; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface SupervisorOptions {
  log: Logger;
  /** Posts to the channel (the bot's notifier); a failure to post is logged, never thrown. */
  announce: (text: string) => Promise<unknown>;
  /** Starts the child; the default forks this same entry point as `worker`. */
  spawn?: () => ChildProcess;
  now?: () => number;
  /** The first restart's delay (default 1 s), doubled for each death in a crash loop up to 60 s. */
  restartBaseMs?: number;
  /** A child silent this long (no heartbeat: hung, or stopped) is killed and started again (default 60 s). */
  hungMs?: number;
}

/**
 * The child runs at the backup tools' niceness (10), every thread of it: its own work (streams through hashing and
 * encryption, progress, health runs) yields the CPU to the acks of this process, as its tools already do. On an
 * idle machine that costs it nothing.
 */
export const forkWorker = (): ChildProcess =>
  yieldCpu(
    fork(process.argv[1] as string, ['worker'], {
      env: { ...process.env, PGBB_SUPERVISED: '1' },
      // Its log lines go where this process's go.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );

/** Starts the child and resolves once it reports ready; rejects when the first one dies before that. */
export async function superviseWorker(options: SupervisorOptions): Promise<WorkerSupervisor> {
  const { log, announce } = options;
  const spawn = options.spawn ?? forkWorker;
  const now = options.now ?? Date.now;
  const base = options.restartBaseMs ?? 1_000;
  const hungMs = options.hungMs ?? 60_000;
  /** The child the watchdog killed for its silence: its exit is told as that, not as a kill from outside. */
  let hung: ChildProcess | null = null;
  let child: ChildProcess | null = null;
  let ready = false;
  let lastBeat = 0;
  let beatOk = false;
  let stopping = false;
  let restartTimer: NodeJS.Timeout | undefined;
  const deaths: number[] = [];
  let lastAnnounced = 0;
  let unannounced = 0;

  let firstReady: { resolve: () => void; reject: (err: Error) => void } | null = null;
  const firstStart = new Promise<void>((resolve, reject) => {
    firstReady = { resolve, reject };
  });

  const start = () => {
    const startedAt = now();
    const proc = spawn();
    child = proc;
    ready = false;
    beatOk = false;
    log.info({ workerPid: proc.pid }, 'worker process started');
    proc.on('message', (m: WorkerReport) => {
      if (m?.type === 'ready') {
        ready = true;
        lastBeat = now();
        beatOk = true;
        firstReady?.resolve();
        firstReady = null;
      } else if (m?.type === 'heartbeat') {
        lastBeat = now();
        beatOk = m.ok;
      }
    });
    proc.on('error', (err) => log.error({ err, workerPid: proc.pid }, 'worker process error'));
    proc.on('exit', (code, signal) => {
      if (child === proc) child = null;
      ready = false;
      if (stopping) return;
      const how =
        hung === proc
          ? `sent no heartbeat for ${formatDuration(hungMs)} (hung or stopped) and was killed`
          : signal
            ? `killed by ${signal}${signal === 'SIGKILL' ? ' (out of memory, or killed by hand)' : ''}`
            : `exited with code ${code}`;
      if (firstReady) {
        firstReady.reject(new Error(`the worker process ${how} before it was ready: its log lines above say why`));
        firstReady = null;
        return;
      }
      // A signal sent to the whole process group (Ctrl-C, a container's stop) reaches the child too, which may be
      // gone before this process has handled its own: a graceful end is judged a moment later.
      const graceful = code === 0 || signal === 'SIGTERM' || signal === 'SIGINT';
      const upFor = formatDuration(now() - startedAt);
      restartTimer = setTimeout(() => died(proc.pid, how, upFor, { code, signal }), graceful ? GRACEFUL_WAIT_MS : 0);
    });
  };

  const died = (pid: number | undefined, how: string, upFor: string, exit: { code: number | null; signal: NodeJS.Signals | null }) => {
    if (stopping) return;
    const at = now();
    deaths.push(at);
    while (deaths.length > 0 && (deaths[0] as number) < at - CALM_MS) deaths.shift();
    const delay = Math.min(60_000, base * 2 ** (deaths.length - 1));
    log.error({ ...exit, workerPid: pid, restartInMs: delay }, `worker process ${how} after ${upFor}; restarting it`);
    // One message per 10 minutes at most: a crash loop is one story, told with its count.
    unannounced++;
    if (at - lastAnnounced >= CALM_MS) {
      const times = unannounced > 1 ? ` (${unannounced} times since the last message)` : '';
      lastAnnounced = at;
      unannounced = 0;
      announce(
        `:warning: The worker process of pg-backup-bot on ${hostname()} ${how} after ${upFor}${times}; starting it again in ${delay / 1000} s. ` +
          'A backup or restore it was running is picked up by the stalled-job check and reported here. Until it is back, /healthz answers 503.',
      ).catch((err: unknown) => log.error({ err }, 'could not post that the worker process died'));
    }
    restartTimer = setTimeout(start, delay);
  };

  // The watchdog: a child that stopped sending heartbeats (event loop blocked, SIGSTOP) is killed, so the exit
  // handler tells the channel and starts another; /healthz has said 503 since its 10th silent second.
  const watchdog = setInterval(
    () => {
      const proc = child;
      if (stopping || !proc || !ready || now() - lastBeat <= hungMs || hung === proc) return;
      hung = proc;
      log.error({ workerPid: proc.pid, silentMs: now() - lastBeat }, 'worker process sends no heartbeat; killing it');
      proc.kill('SIGKILL');
    },
    Math.min(5_000, hungMs / 2),
  );
  watchdog.unref();

  start();
  await firstStart.catch((err: unknown) => {
    clearInterval(watchdog);
    throw err;
  });

  return {
    healthy: () => child !== null && ready && beatOk && now() - lastBeat <= SILENT_MS,
    pid: () => child?.pid ?? null,
    async stop(graceMs = 35_000) {
      stopping = true;
      clearInterval(watchdog);
      clearTimeout(restartTimer);
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      const force = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(force);
    },
  };
}
