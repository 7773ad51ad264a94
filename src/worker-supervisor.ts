import { type ChildProcess, fork } from 'node:child_process';
import { BotError } from './errors.ts';
import { formatDuration } from './format.ts';
import type { Logger } from './logger.ts';
import type { WorkerChildUsage } from './health/metrics.ts';
import { yieldCpu } from './postgres/index.ts';
import { killGroup } from './process-group.ts';
import type { WorkerPager } from './worker-pager.ts';
import { workerBack, workerCalm, workerCalmSummary, workerDied, workerLoopSummary } from './worker-messages.ts';

/**
 * `all` (what `npm start` runs): the bot answers Slack in this process and the workers run in a child process it
 * supervises. Apart, a backup's spawns (each fork of a big process blocks its event loop for 8–15 ms) and the dump
 * streaming through its encryption do not sit in front of the acks (docs/benchmarks.md, leg K).
 *
 * The child is `pg-backup-bot worker` with PGBB_SUPERVISED=1: no HTTP server of its own, a heartbeat over the IPC
 * channel every 2 s, and it stops gracefully when that channel closes (this process died, even by SIGKILL, even
 * while the child was starting). It is a process group of its own: the terminal's Ctrl-C and hangup reach this
 * process alone, which stops the child gracefully, and whatever a dead child leaves (pg_dump, zstd, age, tee) is
 * killed with its group. A child that dies is started again (1 s, doubling to 60 s while it keeps dying) and the
 * channel is told (worker-messages.ts), and again when it is back; while it is down, or silent for 10 s, /healthz
 * answers 503; silent for 60 s (hung, stopped), or not ready 2 minutes after its start, it is killed and started
 * again.
 */

/** What the child sends up the IPC channel. */
export type WorkerReport = { type: 'ready' } | { type: 'heartbeat'; ok: boolean; usage?: WorkerChildUsage };

export const HEARTBEAT_MS = 2_000;
const SILENT_MS = 10_000;
/** Deaths further apart than this are not a crash loop: the backoff starts again from 1 s. */
const CALM_MS = 10 * 60_000;
/** How long a child that ended gracefully is given before it counts as a death (see the exit handler). */
const GRACEFUL_WAIT_MS = 1_000;
const MAX_DELAY_MS = 60_000;
/**
 * How long stop() waits for the child before SIGKILL: longer than the child's own bound on its graceful stop (30 s,
 * service-run.ts), shorter than this process's (40 s), so a stopped or hung child never outlives it.
 */
export const STOP_GRACE_MS = 33_000;

export interface WorkerSupervisor {
  /** Resolves once the first child reports ready; rejects when it dies or hangs before that, or on stop(). */
  ready: Promise<void>;
  /** The child is up, has reported ready, and its last heartbeat (≤ 10 s old) said every worker runs. */
  healthy(): boolean;
  /** The child's pid while one runs. */
  pid(): number | null;
  /** Its memory and CPU as its last heartbeat said (null before the first), and its deaths so far (for /metrics). */
  usage(): WorkerChildUsage | null;
  restarts(): number;
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
  /** The first restart's delay (default 1 s), doubled for each death in a crash loop up to `maxRestartMs` (60 s). */
  restartBaseMs?: number;
  maxRestartMs?: number;
  /** A child silent this long (no heartbeat: hung, or stopped) is killed and started again (default 60 s). */
  hungMs?: number;
  /** A child not ready this long after its start, too (default twice `hungMs`). */
  readyMs?: number;
  /**
   * Pages when the child keeps dying (the wait between restarts reaches its longest: 7 deaths in 10 minutes), and
   * resolves the page once a child has run for `calmMs` (10 minutes). Without it, the channel alone hears.
   */
  pager?: Pick<WorkerPager, 'down' | 'up'>;
  calmMs?: number;
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
      detached: true,
    }),
  );

/** Starts the first child at once; `ready` says when it is up. */
export function superviseWorker(options: SupervisorOptions): WorkerSupervisor {
  const { log, announce } = options;
  const spawn = options.spawn ?? forkWorker;
  const now = options.now ?? Date.now;
  const base = options.restartBaseMs ?? 1_000;
  const hungMs = options.hungMs ?? 60_000;
  const readyMs = options.readyMs ?? 2 * hungMs;
  const maxDelay = options.maxRestartMs ?? MAX_DELAY_MS;
  const calmMs = options.calmMs ?? CALM_MS;
  const pager = options.pager;
  let calmTimer: NodeJS.Timeout | undefined;
  let child: ChildProcess | null = null;
  let startedAt = 0;
  let ready = false;
  let [lastBeat, beatOk, restarts] = [0, false, 0];
  let usage: WorkerChildUsage | null = null;
  let stopping = false;
  let restartTimer: NodeJS.Timeout | undefined;
  /** The child the watchdog killed, and why: its exit is told as that, not as a kill from outside. */
  let hung: { proc: ChildProcess; why: string } | null = null;
  const deaths: number[] = [];
  /** Deaths since the channel last heard, and whether it was told of one it has not heard the end of. */
  const told = { at: Number.NEGATIVE_INFINITY, since: 0, open: false, loop: false };

  let first: { resolve: () => void; reject: (err: Error) => void } | null = null;
  const readyPromise = new Promise<void>((resolve, reject) => {
    first = { resolve, reject };
  });
  readyPromise.catch(() => undefined); // its rejection is the caller's to handle, never an unhandled one
  const say = (text: string) => void announce(text).catch((err: unknown) => log.error({ err }, 'could not post about the worker process'));

  const start = () => {
    startedAt = now();
    const proc = spawn();
    child = proc;
    [ready, beatOk, usage] = [false, false, null];
    log.info({ workerPid: proc.pid }, 'worker process started');
    proc.on('message', (m: WorkerReport) => {
      if (m?.type === 'heartbeat' || m?.type === 'ready') [lastBeat, beatOk] = [now(), m.type === 'ready' || m.ok];
      if (m?.type === 'heartbeat' && m.usage) usage = m.usage;
      if (m?.type !== 'ready' || ready) return;
      ready = true;
      // A child that has run this long ends an episode: its page (also one an earlier process left) is resolved.
      if (pager) {
        clearTimeout(calmTimer);
        calmTimer = setTimeout(() => {
          if (child !== proc) return;
          void pager.up(workerCalmSummary(calmMs)).then((sentence) => sentence && say(`${workerCalm(proc.pid, calmMs)} ${sentence}.`));
        }, calmMs);
      }
      first?.resolve();
      first = null;
      if (told.open) say(workerBack(proc.pid, told.since));
      told.open = false;
    });
    proc.on('error', (err) => log.error({ err, workerPid: proc.pid }, 'worker process error'));
    proc.on('exit', (code, signal) => {
      if (child === proc) child = null;
      ready = false;
      clearTimeout(calmTimer);
      // Whatever it left running (a dump and its pipes) goes with its group.
      killGroup(proc.pid);
      if (stopping) return;
      const how =
        hung?.proc === proc
          ? hung.why
          : signal
            ? `killed by ${signal}${signal === 'SIGKILL' ? ' (out of memory, or killed by hand)' : ''}`
            : `exited with code ${code}`;
      if (first) {
        first.reject(new BotError('internal', `The worker process ${how} before it was ready: its log lines above say why.`));
        first = null;
        return;
      }
      // A signal sent to the whole process group (systemd's control-group stop) reaches the child too, which may be
      // gone before this process has handled its own: a graceful end is judged a moment later.
      const graceful = code === 0 || signal === 'SIGTERM' || signal === 'SIGINT';
      const upFor = now() - startedAt;
      restartTimer = setTimeout(() => died(proc.pid, how, upFor, { code, signal }), graceful ? GRACEFUL_WAIT_MS : 0);
    });
  };

  const died = (pid: number | undefined, how: string, upForMs: number, exit: { code: number | null; signal: NodeJS.Signals | null }) => {
    if (stopping) return;
    const at = now();
    deaths.push(at);
    restarts++;
    while (deaths.length > 0 && (deaths[0] as number) < at - CALM_MS) deaths.shift();
    if (deaths.length === 1) told.loop = false; // calm since the last death: a new story
    const delay = Math.min(maxDelay, base * 2 ** (deaths.length - 1));
    log.error({ ...exit, workerPid: pid, restartInMs: delay }, `worker process ${how} after running for ${formatDuration(upForMs)}; restarting it`);
    told.since++;
    // At most one message per 10 minutes (a crash loop is one story, told with its count), and one more when the
    // wait between restarts reaches its longest.
    const loopNow = delay === maxDelay && !told.loop;
    if (at - told.at >= CALM_MS || loopNow) {
      const text = workerDied({ how, upForMs, times: told.since, delayMs: delay, longest: delay === maxDelay });
      // The loop is what pages: no backup, restore test or health check runs, and the worker's own pages neither.
      if (loopNow && pager) {
        void pager
          .down(workerLoopSummary(how, deaths.length), { how, deaths: deaths.length, restartEveryMs: delay, workerPid: pid })
          .then((sentence) => say(`${text} ${sentence}.`));
      } else {
        say(text);
      }
      Object.assign(told, { at, since: 0, open: true, loop: told.loop || loopNow });
    }
    restartTimer = setTimeout(start, delay);
  };

  // The watchdog: a child that stopped sending heartbeats (event loop blocked, SIGSTOP), or was not ready long
  // after its start, is killed with its group, and the exit handler tells the channel and starts another.
  const watchdog = setInterval(
    () => {
      const proc = child;
      if (stopping || !proc || hung?.proc === proc) return;
      const silent = ready ? now() - lastBeat > hungMs : now() - startedAt > readyMs;
      if (!silent) return;
      const why = ready
        ? `sent no heartbeat for ${formatDuration(hungMs)} (hung or stopped) and was killed`
        : `was not ready ${formatDuration(readyMs)} after its start and was killed`;
      hung = { proc, why };
      log.error({ workerPid: proc.pid }, `worker process ${why}`);
      killGroup(proc.pid);
      proc.kill('SIGKILL');
    },
    Math.min(5_000, hungMs / 2),
  );
  watchdog.unref();
  start();

  return {
    ready: readyPromise,
    healthy: () => child !== null && ready && beatOk && now() - lastBeat <= SILENT_MS,
    pid: () => child?.pid ?? null,
    usage: () => (child ? usage : null),
    restarts: () => restarts,
    async stop(graceMs = STOP_GRACE_MS) {
      stopping = true;
      clearInterval(watchdog);
      clearTimeout(restartTimer);
      clearTimeout(calmTimer);
      first?.reject(new BotError('canceled', 'Stopped before the worker process was ready.'));
      first = null;
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGTERM');
      // SIGKILL works on a stopped (SIGSTOP) child too; its group goes with it (the exit handler).
      const force = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(force);
    },
  };
}
