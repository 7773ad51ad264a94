import { createHmac, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, readdir } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Redis } from 'ioredis';

/** What leg K (bench/ack.ts) needs besides its flow: signed bursts, a Slack stand-in, and probes of the bot. */

/**
 * The bursts of leg K: `now` starts a backup, `list` and `now+` run while it dumps, and so do the floors: the same
 * burst sent to a bare node:http server and to a bare Bolt app (bench/ack-floor.mjs), which run no code of ours.
 */
export type Burst = 'now' | 'list' | 'now+' | 'floor-http' | 'floor-bolt' | 'floor-receiver';
export const BOT_BURSTS = ['now', 'list', 'now+'] as const;
export const FLOOR_BURSTS = ['floor-http', 'floor-bolt', 'floor-receiver'] as const;

/** A slash command as Slack sends it, signed ahead of the burst so signing is not inside anyone's time. */
export interface SignedRequest {
  body: string;
  headers: Record<string, string>;
}

export interface Answer {
  status: number;
  /** The ack's `text` (the bot answers in the ack itself), or the raw body when it is not JSON. */
  text: string;
  ms: number;
}

/**
 * `/backup <text>` from each user, form-encoded with the fields Slack sends and signed with Slack's v0 scheme:
 * HMAC-SHA256 of `v0:{timestamp}:{body}` (test/support/slack-requests.ts does the same for the tests).
 */
export function burstRequests(signingSecret: string, text: string, users: string[], responseUrl?: string): SignedRequest[] {
  const timestamp = String(Math.floor(Date.now() / 1000));
  return users.map((user) => {
    const body = new URLSearchParams({
      token: 'legacy-verification-token',
      team_id: 'T0BENCH',
      team_domain: 'bench',
      channel_id: 'C0INCIDENTS',
      channel_name: 'incidents',
      user_id: user,
      user_name: user.toLowerCase(),
      command: '/backup',
      text,
      api_app_id: 'A0PGBBAPP',
      is_enterprise_install: 'false',
      response_url: responseUrl ?? `https://hooks.slack.invalid/commands/T0BENCH/${randomBytes(6).toString('hex')}`,
      trigger_id: `${Date.now()}.${randomBytes(8).toString('hex')}`,
    }).toString();
    const signature = `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
    return {
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': timestamp, 'x-slack-signature': signature },
    };
  });
}

/**
 * Sends every request at once, each on a new connection as Slack's arrive; each is timed from its send to the last
 * byte of its answer. node:http, not fetch(): undici costs the client about twice the CPU per request, and the
 * client shares the 2 cores with the bot it measures.
 */
export function fire(url: string, reqs: SignedRequest[]): Promise<Answer[]> {
  return Promise.all(
    reqs.map(
      (r) =>
        new Promise<Answer>((resolve, reject) => {
          const t0 = performance.now();
          const req = request(url, { method: 'POST', agent: false, headers: { ...r.headers, 'content-length': Buffer.byteLength(r.body) } }, (res) => {
            let raw = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (raw += chunk));
            res.on('end', () => {
              const ms = performance.now() - t0;
              let text = raw;
              try {
                const parsed = JSON.parse(raw) as { text?: unknown };
                if (typeof parsed.text === 'string') text = parsed.text;
              } catch {
                // not JSON: keep the raw body for the report
              }
              resolve({ status: res.statusCode ?? 0, text, ms });
            });
            res.on('error', reject);
          });
          req.on('error', reject);
          req.end(r.body);
        }),
    ),
  );
}

/** Nearest-rank percentile (q in 0..1) of unsorted samples; 0 for none. */
export function percentile(samples: number[], q: number): number {
  if (samples.length === 0) return 0;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
}

/** A Slack Web API stand-in: every method answers ok; user groups list `members`; calls are counted by method. */
export async function slackStandIn(members: string[]): Promise<{ url: string; calls: Map<string, number>; close(): Promise<void> }> {
  const calls = new Map<string, number>();
  const server = createServer((req, res) => {
    const method = (req.url ?? '').replace(/^\/api\//, '').split('?')[0] ?? '';
    calls.set(method, (calls.get(method) ?? 0) + 1);
    req.resume();
    req.on('end', () => {
      const body =
        method === 'auth.test'
          ? { ok: true, url: 'https://bench.slack.com/', team: 'bench', user: 'pgbb', team_id: 'T0BENCH', user_id: 'U0PGBBBOT', bot_id: 'B0PGBB' }
          : method === 'usergroups.users.list'
            ? { ok: true, users: members }
            : { ok: true, channel: 'C0INCIDENTS', ts: `${(Date.now() / 1000).toFixed(6)}` };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/api/`, calls, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** utime + stime of a process in ms (clock ticks of 10 ms). */
export async function cpuMs(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 10;
}

/** Every process on the machine: its name and its parent's pid, from /proc/<pid>/stat. */
async function processTable(): Promise<Map<number, { name: string; parent: number }>> {
  const procs = new Map<number, { name: string; parent: number }>();
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const close = stat.lastIndexOf(')');
    if (close > 0) procs.set(Number(pid), { name: stat.slice(stat.indexOf('(') + 1, close), parent: Number(stat.slice(close + 2).split(' ')[1]) });
  }
  return procs;
}

/**
 * Whether `ancestor` has a process named `name` below it (the bot's pg_dump: the dump itself, not the counts before
 * it); under `all` the dump is a grandchild, the worker child's.
 */
export async function hasDescendant(ancestor: number | undefined, name: string): Promise<boolean> {
  const procs = await processTable();
  for (const p of procs.values()) {
    if (p.name !== name) continue;
    for (let up = p.parent, hops = 0; up > 1 && hops < 10; up = procs.get(up)?.parent ?? 0, hops++) if (up === ancestor) return true;
  }
  return false;
}

/** The pid of `parent`'s child process named `name` (the worker child of `all`: `node`), if it has one. */
export async function childNamed(parent: number | undefined, name: string): Promise<number | undefined> {
  for (const [pid, p] of await processTable()) if (p.name === name && p.parent === parent) return pid;
  return undefined;
}

/** Commands the Redis server has run since it started, every client's. */
export async function redisCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  let total = 0;
  for (const m of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) total += Number(m[1]);
  return total;
}

/** Polls `probe` every 25 ms until it gives a value (not undefined or false). */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined | false>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Where a burst's time went besides the bot's handlers: the longest stall of each event loop while it ran. */
export interface Stalls {
  /** The burst's fastest answer: a whole-burst delay shows here, not only in its p99. */
  fastestMs: number;
  /** The bench client's longest event-loop stall (monitorEventLoopDelay, 10 ms resolution). */
  clientLagMs: number;
  /** The bot's, from its /metrics (prom-client's histogram, reset by each scrape); null for a floor. */
  botLagMs: number | null;
  /** Garbage collection in the bot during the burst, all kinds (nodejs_gc_duration_seconds_sum). */
  botGcMs: number | null;
  /** Of which major (mark-compact) collections: the pauses that stop every request at once. */
  botMajorGcMs: number | null;
  /**
   * How long the bot's main thread was ready to run but waited for a CPU (the kernel's run delay,
   * /proc/<pid>/schedstat), and how long it ran: a stall longer than both GC and its own CPU is the machine's.
   */
  botRunDelayMs: number | null;
  botOnCpuMs: number | null;
  /**
   * The machine's two cores over the same window, in CPU-ms (/proc/stat): at normal priority (user, system, irq),
   * at lowered priority (nice: the worker's dump tools, niced with it), idle, and stolen by the hypervisor.
   */
  machine: { normal: number; niced: number; idle: number; steal: number } | null;
}

async function scrapeBot(metricsPort: number): Promise<{ lagMs: number; gcMs: number; majorMs: number }> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const lag = Number(/^nodejs_eventloop_lag_max_seconds\S* (\S+)/m.exec(text)?.[1] ?? Number.NaN);
  let gc = 0;
  let major = 0;
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum(\S*) (\S+)/gm)) {
    gc += Number(m[2]);
    if (m[1]?.includes('kind="major"')) major += Number(m[2]);
  }
  return { lagMs: lag * 1000, gcMs: gc * 1000, majorMs: major * 1000 };
}

type MachineCpu = { normal: number; niced: number; idle: number; steal: number };

/** The machine's CPU time so far, in ms, from the first line of /proc/stat (USER_HZ ticks of 10 ms). */
async function machineCpu(): Promise<MachineCpu | null> {
  const line = (await readFile('/proc/stat', 'utf8').catch(() => '')).split('\n')[0] ?? '';
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  if (steal === undefined || Number.isNaN(steal)) return null;
  return {
    normal: ((user ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0)) * 10,
    niced: (nice ?? 0) * 10,
    idle: ((idle ?? 0) + (iowait ?? 0)) * 10,
    steal: steal * 10,
  };
}

/** A process's main thread: time on a CPU and time waiting for one, in ns (/proc/<pid>/schedstat). */
async function schedstat(pid: number | undefined): Promise<{ runNs: number; waitNs: number } | null> {
  if (pid === undefined) return null;
  const [run, wait] = (await readFile(`/proc/${pid}/schedstat`, 'utf8').catch(() => '')).split(' ').map(Number);
  return run === undefined || wait === undefined || Number.isNaN(wait) ? null : { runNs: run, waitNs: wait };
}

/**
 * Resets the bot's lag figure (by scraping it), waits `settleMs` for the scrape's own work to be over, then starts
 * watching the client's event loop, the bot's scheduling and the machine's cores; the returned function stops and reads
 * them all. Scrapes happen before and after the burst, never during it.
 */
export async function stallWatch(metricsPort: number | null, botPid?: number, settleMs = 0): Promise<() => Promise<Omit<Stalls, 'fastestMs'>>> {
  const before = metricsPort === null ? null : await scrapeBot(metricsPort);
  await new Promise((r) => setTimeout(r, settleMs));
  const [sched0, cpu0] = await Promise.all([schedstat(botPid), machineCpu()]);
  const client = monitorEventLoopDelay({ resolution: 10 });
  client.enable();
  return async () => {
    client.disable();
    const [cpu1, sched1] = await Promise.all([machineCpu(), schedstat(botPid)]);
    const after = metricsPort === null ? null : await scrapeBot(metricsPort);
    const d = (k: keyof MachineCpu) => (cpu0 && cpu1 ? cpu1[k] - cpu0[k] : 0);
    return {
      machine: cpu0 && cpu1 ? { normal: d('normal'), niced: d('niced'), idle: d('idle'), steal: d('steal') } : null,
      botRunDelayMs: sched0 && sched1 ? (sched1.waitNs - sched0.waitNs) / 1e6 : null,
      botOnCpuMs: sched0 && sched1 ? (sched1.runNs - sched0.runNs) / 1e6 : null,
      clientLagMs: client.max / 1e6,
      botLagMs: after ? after.lagMs : null,
      botGcMs: after && before ? after.gcMs - before.gcMs : null,
      botMajorGcMs: after && before ? after.majorMs - before.majorMs : null,
    };
  };
}
