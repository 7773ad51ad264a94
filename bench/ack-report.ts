import type { AckResult, BurstStats } from './ack.ts';
import { FILLER_MB } from './ack.ts';
import type { MachineFacts } from './report.ts';

/** The machine and the moment of a leg K run, for its section of docs/benchmarks.md. */
export interface AckFacts extends MachineFacts {
  /** `git describe` of the checkout the bot ran from (what was measured). */
  commit: string;
  /** 1-minute load average before the leg and after it. */
  load: [number, number];
  seconds: number;
}

/** The goal of issue 11, item 5: every burst's p99 under 100 ms, with a backup running. */
export const ACK_P99_GOAL_MS = 100;

const TITLES: Record<BurstStats['kind'], string> = {
  now: '`/backup now` × 50, nothing running: the first starts the backup',
  list: '`/backup list` × 50 while that backup dumps (≥ 1.5 s into its pg_dump)',
  'now+': '`/backup now` × 50 while that backup dumps (≥ 1.5 s into its pg_dump)',
  'floor-http': 'floor: the same 50 requests to a bare node:http server (fixed answer), beside the same dump',
  'floor-bolt': 'floor: the same 50 requests to a bare Bolt app (its HTTPReceiver, signatures checked, `/backup` acks a fixed text), beside the same dump',
  'floor-receiver': "the same bare Bolt app on the bot's receiver (src/slack-receiver.ts) instead of Bolt's HTTPReceiver, beside the same dump",
};
const isFloor = (b: BurstStats) => b.kind.startsWith('floor-');

const ms = (v: number) => `${v.toFixed(v < 10 ? 1 : 0)} ms`;

export function ackMarkdown(f: AckFacts, r: AckResult): string {
  const loadNote =
    Math.max(...f.load) > 1
      ? ` Load average (1 min) ${f.load[0].toFixed(2)} before, ${f.load[1].toFixed(2)} after (the leg's own backups included): other work was running, treat the times with care.`
      : ` Load average (1 min) ${f.load[0].toFixed(2)} before, ${f.load[1].toFixed(2)} after (the leg's own backups included).`;
  const meanBackup = r.backupMs.reduce((a, b) => a + b, 0) / Math.max(1, r.backupMs.length);
  const rows = r.bursts.map((b) => {
    const slack = Object.entries(b.slackCalls)
      .map(([m, n]) => `${m} ${n}`)
      .join(', ');
    return `| ${b.kind} | ${TITLES[b.kind]} | ${b.samplesMs.length} | ${ms(b.p50)} | **${ms(b.p99)}** | ${ms(b.max)} | ${b.roundP99.map((v) => v.toFixed(0)).join(', ')} | ${b.redisPerRequest.toFixed(1)} | ${b.botCpuMsPerRequest.toFixed(1)} | ${slack || '0'} |`;
  });
  // Where each burst's time went (bench/ack-support.ts stallWatch): what the bot needed of a CPU against how long it
  // waited for one, beside garbage collection and the client's own stalls.
  const stallRows = r.bursts
    .filter((b) => !isFloor(b))
    .flatMap((b) =>
      b.stalls.map(
        (s, i) =>
          `| ${b.kind} | ${i + 1} | ${(b.roundP99[i] ?? 0).toFixed(0)} | ${s.fastestMs.toFixed(0)} | ${s.botOnCpuMs?.toFixed(0) ?? '–'} | ${s.botRunDelayMs?.toFixed(0) ?? '–'} | ${s.botGcMs?.toFixed(0) ?? '–'} (${s.botMajorGcMs?.toFixed(0) ?? '–'}) | ${s.botLagMs?.toFixed(0) ?? '–'} | ${s.clientLagMs.toFixed(0)} | ${s.machine ? `${s.machine.normal} / ${s.machine.niced} / ${s.machine.idle} / ${s.machine.steal}` : '–'} |`,
      ),
    );
  const goals = r.bursts
    .filter((b) => !isFloor(b))
    .map((b) => `| ${b.kind} p99 | < ${ACK_P99_GOAL_MS} ms | ${ms(b.p99)} | ${b.p99 < ACK_P99_GOAL_MS ? 'PASS' : 'FAIL'} |`);
  const checks = r.checks.map(
    (c) =>
      `| ${c.check} | ${c.passed} of ${c.of} | ${c.passed === c.of ? 'PASS' : `FAIL${c.note ? `: ${c.note.replace(/\|/g, '\\|').replace(/\s+/g, ' ')}` : ''}`} |`,
  );
  return `Run ${f.date} on \`${f.commit}\`. Machine: ${f.nproc} CPUs (${f.cpu}), ${f.memGiB.toFixed(1)} GiB RAM, Linux ${f.kernel}, Node ${f.node}; ${f.pgVersion}.${loadNote}
${r.mode === 'all' ? "The bot ran as `npm start` runs it (`node bin/pg-backup-bot.js all`: Slack answered in that process, the workers in the child it supervises; CPU and RSS are the bot process's" : "The bot and its workers ran as two processes (`node bin/pg-backup-bot.js bot` and `… worker`, BENCH_ACK_SPLIT=1; CPU and RSS are the bot's"}, the environment contract only, LOG_LEVEL info) on a throwaway PostgreSQL and Redis,
with a Slack Web API stand-in that answers ok; roles from a user group (\`roles.operator: [S…]\`, members through \`usergroups.users.list\`), backups encrypted with age.
Database ${(r.databaseBytes / 1e6).toFixed(0)} MB (the sample schema and a ${FILLER_MB} MB filler table); ${r.storedAtStart} finished backups stored before the rounds (taken by the bot, ${r.seedSeconds.toFixed(0)} s), one more after each round.
${r.rounds} rounds of bursts of ${r.burst} concurrent signed requests from ${r.burst} different users: three to the bot (\`list\` and \`now+\` swap places every other round), then the same burst to each floor; each round's backup ended ${(meanBackup / 1000).toFixed(1)} s after its \`now\` burst on average, and its pg_dump was still running when the last burst ended in ${r.dumpThrough.filter(Boolean).length} of ${r.rounds} rounds.
Latency is the client's: from sending the request to the last byte of the HTTP response, which is the ack carrying the answer. Redis commands (every client's, the workers' included) and the CPU of the process that answered are per request, over the bursts; for a floor, the CPU is its server's.
The first two floors run no code of ours: they show what the machine, Node's HTTP server and Bolt cost a burst while the same dump runs, the part of the bot's figures no change in our handlers can remove; the third is that Bolt app on the bot's own receiver, the floor of the bot as it is built. While its backup dumped and no request came, the bot used ${r.quietCpuMsPerSecond.map((v) => v.toFixed(0)).join(', ')} ms of CPU per second (per round); its peak RSS was ${r.botPeakRssMiB.toFixed(0)} MiB${r.workerPeakRssMiB ? `, its worker process's ${r.workerPeakRssMiB.toFixed(0)} MiB` : ''}.

| burst | what | requests | p50 | p99 | max | p99 per round (ms) | Redis commands / request | bot CPU / request | Slack API calls |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}

Where each burst's time went, per round (ms): the bot's main thread on a CPU and waiting for one (the kernel's run delay,
\`/proc/<pid>/schedstat\`), its garbage collection (of which major), the longest stall of its event loop, and of the client's; and the machine's
two cores over the same window (\`/proc/stat\`, CPU-ms in 10 ms ticks): busy at normal priority, busy niced (the dump's
tools run niced with the worker), idle, stolen by the hypervisor.

| burst | round | p99 | fastest answer | bot on CPU | bot waiting for a CPU | bot GC (major) | bot loop stall | client loop stall | cores: normal / niced / idle / steal |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${stallRows.join('\n')}

| check | goal | measured | verdict |
| --- | --- | --- | --- |
${goals.join('\n')}

| correctness check | rounds | verdict |
| --- | --- | --- |
${checks.join('\n')}
${r.botErrors.length > 0 ? `\nThe bot logged ${r.botErrors.length} error line(s) during the leg; the first: \`${(r.botErrors[0] ?? '').replace(/`/g, "'").slice(0, 300)}\`\n` : ''}`;
}
