import { mkdir } from 'node:fs/promises';
import { execa } from 'execa';
import { withDeadline } from '../../deadline.ts';
import { dyingWithUs } from '../child-pipes.ts';
import type { Logger } from '../../logger.ts';
import { withPgEnv } from '../connection.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { collectOutput } from '../output-tail.ts';
import { divergedSentence, spoolPastFork, forkedBeforeSpool, setAsideDiverged, timelineAfter } from './diverged.ts';
import { streamProblem } from './stream-problems.ts';
import { pastRemovedWal, REMOVED_WAL } from './removed-wal.ts';

export interface ReceiverState {
  up: boolean;
  /** Why it is down: pg_receivewal's own first error line. */
  error?: string;
  since: Date;
}

export interface ReceiverOptions {
  pgReceivewal: string;
  /** The replication connection (a role with REPLICATION); its password reaches pg_receivewal through a passfile. */
  url: string;
  slot: string;
  /** pg_receivewal's directory: segments being written (`.partial`) and completed ones until they are archived. */
  spool: string;
  log: Logger;
  onState(state: ReceiverState): void;
  backoff?: { minMs: number; maxMs: number };
  /** How long pg_receivewal must keep running before a failure after it starts a new down episode (default 10 s). */
  upAfterMs?: number;
  /**
   * Why WAL must not be written to the spool now (BACKUP_DIR is not the bot's storage: storage-mark.ts), or null.
   * Asked before each start and every `guardEveryMs` while pg_receivewal runs (default 30 s); a reason stops it.
   */
  precondition?: () => Promise<string | null>;
  guardEveryMs?: number;
}

/**
 * The receiver's restart backoff for a target's RPO objective: doubling from 1 s up to a quarter of the objective,
 * at most a minute and at least 5 s. A fixed minute let a failover's restarts alone (1, 2, 4, … 32, 60 s) eat an
 * objective of 60 s, which a target may set (pitr.rpoSeconds); with the default hour nothing changes.
 */
export const receiverBackoff = (rpoSeconds: number): { minMs: number; maxMs: number } => ({
  minMs: 1000,
  maxMs: Math.max(5000, Math.min(60_000, Math.round((rpoSeconds * 1000) / 4))),
});

/**
 * pg_receivewal, supervised: it streams WAL over a replication connection into the spool, through a physical
 * replication slot (created if missing), so the server keeps every segment the receiver has not confirmed, also
 * while it is down. `--synchronous` flushes what it receives at once: a partial segment on the worker's disk is
 * durable there. When it dies (the server restarted, the network broke), it is started again after a backoff
 * that doubles up to a minute and starts over after a minute of running.
 */
export function superviseReceiver(o: ReceiverOptions): { stop(): Promise<void> } {
  const { minMs, maxMs } = o.backoff ?? { minMs: 1000, maxMs: 60_000 };
  const upAfterMs = o.upAfterMs ?? 10_000;
  let stopping = false;
  let child: { kill(signal: NodeJS.Signals): unknown } | undefined;
  let wake: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  // What the precondition said while pg_receivewal ran: it was stopped for that.
  let guarded: string | null = null;
  let runs = 0;
  // A check that cannot answer (Redis away) stops nothing: the stream goes on, as it did before the check.
  const refused = async () => {
    if (!o.precondition) return null;
    const problem = await withDeadline(5000, o.precondition(), 'checking the WAL spool’s storage', 'storage').catch((err: unknown) => {
      o.log.warn({ err, slot: o.slot }, 'the WAL spool’s storage could not be checked; streaming on');
      return null;
    });
    return problem ? `not streaming: ${problem}` : null;
  };
  const once = () =>
    withPgEnv(o.url, async (env) => {
      // Before the spool is made: on a disk that is not mounted, it would be made on the filesystem beneath.
      const refusal = await refused();
      if (refusal) return refusal;
      await mkdir(o.spool, { recursive: true, mode: 0o700 });
      const opts = { env, extendEnv: false, stdin: 'ignore', reject: false } as const;
      const slot = await execa(o.pgReceivewal, ['--create-slot', '--if-not-exists', `--slot=${o.slot}`, '--no-password'], { ...opts, all: true });
      if (slot.failed) {
        const said = String(slot.all ?? '');
        return `cannot stream: ${streamProblem(said) ?? `could not create the replication slot ${o.slot} (${firstErrorLine(said) || describeExit(slot)})`}`;
      }
      if (stopping) return null;
      // It dies with this worker (kill -9, OOM): an orphan went on streaming, and health took it for the bot's (QA).
      const [file, args] = await dyingWithUs(o.pgReceivewal, [`--directory=${o.spool}`, `--slot=${o.slot}`, '--synchronous', '--no-loop', '--no-password']);
      const running = execa(file, args, {
        ...opts,
        stdout: 'ignore',
        stderr: 'pipe',
        buffer: false,
      });
      child = running;
      const stderr = collectOutput(running.stderr);
      // Only a run that lasted ends a down episode: one that dies at once on every start (the server no longer has
      // the WAL it asks for) stays down since its first failure, so health's grace runs out and it pages, and is not
      // reported up in between (a health run then would resolve the page, and the next trigger it again: review).
      const startedAt = new Date();
      if (downSince === null) o.onState({ up: true, since: startedAt });
      // Still down, but the reason is no longer current (QA, a failover: "not reachable" for 10 s while the promoted
      // server's WAL was being archived): said as a restart, with why it had stopped.
      else o.onState({ up: false, since: downSince, error: restartedSentence(startedAt, lastWhy, upAfterMs) });
      const lasted = setTimeout(() => {
        if (downSince !== null) o.onState({ up: true, since: startedAt });
        downSince = null;
      }, upAfterMs);
      guarded = null;
      // A check begun under an earlier run that answers late speaks for none (second reader).
      const run = ++runs;
      const guard = o.precondition
        ? setInterval(
            () =>
              void refused().then((why) => {
                if (!why || stopping || run !== runs) return;
                guarded = why;
                running.kill('SIGTERM');
              }),
            o.guardEveryMs ?? 30_000,
          )
        : undefined;
      const res = await running.finally(() => {
        clearTimeout(lasted);
        clearInterval(guard);
      });
      child = undefined;
      const said = stderr.text();
      if (stopping) return null;
      if (guarded) return guarded;
      // A crash failover to a standby that was behind: the spool's newest file lies past the promoted server's fork.
      // Judged by the server's history, whatever pg_receivewal printed: the refusal comes in the server's lc_messages
      // (review: matched in English only, a server answering in German wedged the stream for good); its words count
      // only when the history cannot be asked.
      const byHistory = await spoolPastFork(o.url, o.spool).catch((err: unknown) => {
        // Said, not swallowed: without the history a refusal in another language is not recognised (second reader).
        o.log.warn({ err, slot: o.slot }, "the server's timeline history could not be asked after the receiver stopped");
        return null;
      });
      if (stopping) return null;
      const diverged = byHistory ?? forkedBeforeSpool(said);
      if (diverged) {
        const r = await setAsideDiverged(o.spool, diverged, () => timelineAfter(o.url, diverged.timeline));
        o.log.warn(
          { slot: o.slot, ...diverged, ...r, found: byHistory ? 'server history' : 'refusal' },
          "the promoted server's history forked before WAL the bot holds; the old timeline's partial segment set aside",
        );
        return `pg_receivewal stopped: ${divergedSentence(diverged, r)}`;
      }
      const removed = REMOVED_WAL.exec(said);
      if (removed) return `pg_receivewal stopped: ${await pastRemovedWal({ ...o, env, segment: removed[1] as string })}`;
      return `pg_receivewal stopped: ${streamProblem(said) ?? (firstErrorLine(said) || describeExit(res))}`;
    });

  // Down since the first failure of this episode, kept across restarts: health's grace runs from it, not from the last try.
  let downSince: Date | null = null;
  let lastWhy: string | null = null;
  const loop = (async () => {
    let delay = minMs;
    while (!stopping) {
      const started = Date.now();
      const why = await once().catch((err: unknown) => (err instanceof Error ? err.message : String(err)));
      if (stopping) break;
      downSince ??= new Date();
      lastWhy = why;
      o.onState({ up: false, since: downSince, ...(why ? { error: why } : {}) });
      o.log.warn({ slot: o.slot, why, retryInMs: delay }, 'WAL receiver down; restarting');
      if (Date.now() - started > 60_000) delay = minMs;
      await sleep(delay);
      delay = Math.min(delay * 2, maxMs);
    }
  })();

  return {
    async stop() {
      stopping = true;
      wake?.();
      // SIGTERM: pg_receivewal flushes what it has and exits; the partial segment stays for the next start.
      child?.kill('SIGTERM');
      await loop;
    },
  };
}

/** A receiver started again within a down episode: running, not yet counted as up (it may die at once again). */
export function restartedSentence(at: Date, why: string | null, upAfterMs: number): string {
  const time = `${at.toISOString().slice(11, 19)} UTC`;
  return `pg_receivewal started again at ${time}${why ? ` (it had stopped: ${why})` : ''}; counted as up once it has run ${upAfterMs / 1000} s`;
}
