import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { repairClaim } from '../jobs/redis-lock.ts';
import type { Config } from '../config.ts';
import { toUserMessage } from '../errors.ts';
import { formatBytes } from '../format.ts';
import { formatInZone } from '../schedules/time.ts';
import type { Logger } from '../logger.ts';
import type { Storage } from '../storage/index.ts';
import { archiveDamageAdvice, type PitrScrubReport, scrubbedPitrTargets, scrubPitrArchives } from '../postgres/pitr/pitr-scrub.ts';
import { pitrInS3 } from '../postgres/pitr/pitr-location.ts';
import { scrubKey } from '../postgres/pitr/pitr-scrub-decode.ts';
import { createAuditLog, scrubRepair } from '../audit.ts';
import { backupsInUse, readersOf } from '../jobs/backups-in-use.ts';
import type { RedisConnection } from '../redis-client.ts';
import { type CopyScrubOutcome, repairFromCopies } from '../storage/copy-scrub.ts';
import { copyScrubState, memoryScrubState, redisScrubState, type ScrubReport, scrubBackups } from '../storage/scrub.ts';
import type { CliIo } from './backup-cli.ts';
import { inUseQueues } from './cli-queues.ts';
import { connectRedis } from './cli-redis.ts';

const USAGE = 'usage: pg-backup-bot scrub [--all]';

type Deps = { config: Config; redisUrl: string | null; storage: Storage; copies?: readonly Storage[]; log: Logger; io: CliIo };

/**
 * `pg-backup-bot scrub [--all]`: the checksum scrub the worker runs after each retention run (storage/scrub.ts), now
 * and in the foreground: for when the disk or the bucket is suspect. Without `--all` it reads what the next daily run
 * would (a seventh of what is stored, longest unread first); with it, every backup. A backup found damaged is marked
 * as the worker marks it; with S3 copies and REDIS_URL, damage on one side is rewritten from the other (copy-scrub.ts).
 * With REDIS_URL it shares the worker's memory of what was read when. Exit 0 when everything read matched or was
 * mended, 1 when a backup is left damaged or could not be read.
 */
export async function cliScrub(args: string[], deps: Deps): Promise<number> {
  const { io } = deps;
  const unknown = args.find((a) => a !== '--all');
  if (unknown !== undefined) {
    io.err(`"${unknown.slice(0, 40)}" is not an argument of scrub. ${USAGE}`);
    return 2;
  }
  const redis = deps.redisUrl === null ? null : await connectRedis(deps.redisUrl, deps.config.redisCluster);
  if (deps.redisUrl !== null && !redis) io.err('Redis at REDIS_URL does not answer: reading without the worker’s memory of what was read when.');
  try {
    const state = redis ? redisScrubState(redis, deps.config.queuePrefix) : memoryScrubState();
    const all = args.includes('--all');
    const r = await scrubBackups({ storage: deps.storage, state, now: new Date(), log: deps.log, all });
    const where = deps.storage.describe();
    // The point-in-time archive too (pitr-scrub.ts), with its own memory, as the worker reads it after retention.
    const pitrTargets = scrubbedPitrTargets(deps.config, pitrInS3(deps.config));
    const archive = pitrTargets.length
      ? await scrubPitrArchives({
          root: deps.config.backupDir,
          targets: pitrTargets,
          state: redis ? redisScrubState(redis, `${deps.config.queuePrefix}:pitr`) : memoryScrubState(),
          now: new Date(),
          log: deps.log,
          all,
          decode: { identity: await scrubKey(deps.config.encryption.identityFile) },
        })
      : null;
    if (r.stored === 0 && r.alreadyDamaged.length + r.expired.length === 0 && !archive?.stored) {
      io.err(`No backup is stored on ${where}: nothing to read back. Is BACKUP_DIR (or the bucket) the bot's, and the disk mounted?`);
      return 1;
    }
    // Damage mended from the off-site copies, then the copies read back (copy-scrub.ts): never under a restore that
    // reads it, so never without Redis to ask.
    const repaired = await repairCopies(deps, redis, r, all);
    const healing = repaired?.healing;
    const copies = repaired?.copies ?? [];
    const wasHealed = (d: { target: string; backupId: string }) => healing?.healed.get(`${d.target}/${d.backupId}`);
    const stillDamaged = r.damaged.filter((d) => !wasHealed(d));
    const stillAlready = r.alreadyDamaged.filter((d) => !wasHealed(d));
    const archiveBad = archive ? printArchiveScrub(archive, io) : 0;
    // Said, not left out (QA: `scrub --all` exited 0 without a word of the archive it did not read).
    const inBucket = pitrInS3(deps.config) ? deps.config.targets.filter((t) => t.pitr).map((t) => t.name) : [];
    if (inBucket.length)
      io.out(
        `NOT READ the point-in-time archive of ${inBucket.join(', ')}: with S3 as the primary store it is not read back here; \`/restore-test pitr\` reads every segment from a base backup on and checks each against its sha256.`,
      );
    // A copy marked damaged just above (while the primary was mended from it) is listed by its scrub as already damaged.
    const saidAbove = new Set((healing?.copiesFoundDamaged ?? []).map((d) => `${d.destination} ${d.backupId}`));
    const copiesBad = copies.reduce((n, c) => n + printCopyScrub(c, io, saidAbove), 0);
    for (const id of r.verified) io.out(`OK ${id}`);
    for (const d of [...r.damaged, ...r.alreadyDamaged].filter(wasHealed))
      io.out(`HEALED ${d.backupId}: it was damaged (${d.why}); rewritten from the copy in ${wasHealed(d)} and read back whole.`);
    for (const d of healing?.failed ?? []) io.out(`NOT HEALED ${d.backupId}: could not be rewritten from the copy in ${d.destination}: ${d.because}.`);
    for (const d of healing?.copiesFoundDamaged ?? []) io.out(`DAMAGED ${d.backupId} in ${d.destination}: ${d.why}. Marked damaged there.`);
    for (const d of [...stillDamaged, ...(healing?.primaryFoundDamaged ?? [])])
      io.out(
        'archiveIntact' in d && d.archiveIntact
          ? `DAMAGED ${d.backupId}: ${d.why}. Marked damaged: its roles file alone, so its database archive is intact and restores without --with-globals still take it; take a new backup (\`pg-backup-bot backup ${d.target}\`) for a whole one.`
          : `DAMAGED ${d.backupId}: ${d.why}. Marked damaged; take a new backup (\`pg-backup-bot backup ${d.target}\`) if you counted on it.`,
      );
    for (const d of r.unreadable) io.out(`UNREADABLE ${d.backupId}: ${d.why}`);
    for (const d of stillAlready) io.out(`ALREADY DAMAGED ${d.backupId}: ${d.why}`);
    // Said with when it goes (QA: a damaged backup past its deadline was in no report until retention deleted it).
    for (const d of r.expired)
      io.out(
        `EXPIRED ${d.backupId}: damaged (${d.why}), past its retention deadline (${formatInZone(new Date(d.deadline), deps.config.timezone)}): the next retention run deletes it.`,
      );
    io.out(
      `Read back ${r.verified.length + r.damaged.length} of ${r.stored} stored backups on ${where} (${formatBytes(r.verifiedBytes)} matching): ` +
        `${r.damaged.length} found damaged, ${r.unreadable.length} unreadable, ${r.alreadyDamaged.length} already damaged (not read)${r.expired.length ? `, ${r.expired.length} damaged and past ${r.expired.length === 1 ? 'its' : 'their'} deadline (not read)` : ''}${healing?.healed.size ? `; ${healing.healed.size} healed from a copy` : ''}.`,
    );
    // The worker's scrub posts damage at once; this command has no Slack: the bot's next health check pages it.
    if (stillDamaged.length + (archive?.damaged.length ?? 0) > 0)
      io.err(
        `The channel is not told by this command: the bot’s next health check (every ${deps.config.health.intervalMinutes} min) pages ${stillDamaged.length ? 'the damaged backups' : 'what it found damaged'} as \`damaged\`.`,
      );
    const found = (healing?.copiesFoundDamaged.length ?? 0) + (healing?.primaryFoundDamaged.length ?? 0);
    const bad = stillDamaged.length + r.unreadable.length + stillAlready.length + found;
    return bad + archiveBad + copiesBad > 0 ? 1 : 0;
  } catch (err) {
    io.err(`The checksum scrub could not run: ${toUserMessage(err)}`);
    return 1;
  } finally {
    redis?.disconnect();
  }
}

/** The rewrites from the copies and the copies' scrub (copy-scrub.ts), as the worker runs them after its scrub. */
async function repairCopies(deps: Deps, redis: RedisConnection | null, r: ScrubReport, all: boolean) {
  if (!deps.copies?.length) return null;
  const prefix = deps.config.queuePrefix;
  const queues = redis ? inUseQueues(redis, prefix) : null;
  const audit = createAuditLog(deps.config.backupDir, deps.log.child({ component: 'audit' }), { createDir: false });
  const by = { jobId: null, userName: process.env.USER ?? process.env.LOGNAME ?? null };
  try {
    return await repairFromCopies(
      {
        primary: deps.storage,
        copies: deps.copies.map((storage) => ({ storage, state: redis ? copyScrubState(redis, prefix, storage) : memoryScrubState() })),
        now: new Date(),
        log: deps.log,
        all,
        inUse: async () => (queues && redis ? readersOf(await backupsInUse(queues, { redis, prefix })) : null),
        // Only reached with Redis (no readers known, nothing is rewritten).
        claim: redis ? repairClaim(redis, prefix, `cli:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`) : async () => 'no Redis to claim it in',
        onRewritten: (w) => audit.append(scrubRepair(`${w.to} ${w.backupId}`, `rewritten from ${w.from}: it was damaged`, by)),
      },
      [...r.damaged, ...r.alreadyDamaged],
    );
  } finally {
    await queues?.close();
  }
}

/** The archive scrub's lines (WAL files are many: only what is wrong is named); returns how many files were wrong. */
function printArchiveScrub(a: PitrScrubReport, io: CliIo): number {
  for (const d of a.damaged) io.out(`DAMAGED ${d.what} of ${d.target}: ${d.why}. ${archiveDamageAdvice(d, `\`pg-backup-bot base-backup ${d.target}\``)}`);
  for (const d of a.unreadable) io.out(`UNREADABLE ${d.what} of ${d.target}: ${d.why}`);
  for (const d of a.alreadyDamaged)
    io.out(`ALREADY DAMAGED ${d.what} of ${d.target}: ${d.why}. ${archiveDamageAdvice(d, `\`pg-backup-bot base-backup ${d.target}\``)}`);
  io.out(
    `Read back ${a.verified + a.damaged.length} of ${a.stored} files of the point-in-time archive (${formatBytes(a.verifiedBytes)} matching): ` +
      `${a.damaged.length} found damaged, ${a.unreadable.length} unreadable, ${a.alreadyDamaged.length} already damaged (not read); ` +
      `${a.decoded} WAL files decrypted and decompressed whole.`,
  );
  if (a.notDecodedWhy) io.out(`NOT DECODED ${a.notDecoded} encrypted WAL files: ${a.notDecodedWhy}.`);
  return a.damaged.length + a.unreadable.length + a.alreadyDamaged.length;
}

/** A copy's lines: what was rewritten, what stays damaged, what could not be read; returns how many are still wrong. */
function printCopyScrub(c: CopyScrubOutcome, io: CliIo, saidAbove: ReadonlySet<string>): number {
  if (typeof c.report === 'string') {
    io.out(`UNREADABLE the copy in ${c.destination}: the checksum scrub could not run: ${c.report}`);
    return 1;
  }
  const said = new Set([...c.repaired, ...c.notRepaired].map((d) => d.backupId));
  const already = c.report.alreadyDamaged.filter((d) => !said.has(d.backupId) && !saidAbove.has(`${c.destination} ${d.backupId}`));
  for (const d of c.repaired) io.out(`REPAIRED ${d.backupId} in ${c.destination}: it was damaged (${d.why}); rewritten from the primary and read back whole.`);
  for (const d of c.notRepaired) {
    const advice = d.kind === 'unavailable' ? `; take a new backup (\`pg-backup-bot backup ${d.target}\`) if you counted on it` : '';
    io.out(`DAMAGED ${d.backupId} in ${c.destination}: ${d.why}. Left out of the copy's listings, not rewritten: ${d.because}${advice}.`);
  }
  for (const d of c.report.unreadable) io.out(`UNREADABLE ${d.backupId} in ${c.destination}: ${d.why}`);
  for (const d of already) io.out(`ALREADY DAMAGED ${d.backupId} in ${c.destination}: ${d.why}`);
  io.out(
    `Read back ${c.report.verified.length + c.report.damaged.length} of ${c.report.stored} backups in ${c.destination} (${formatBytes(c.report.verifiedBytes)} matching): ` +
      `${c.repaired.length} rewritten, ${c.notRepaired.length} damaged, ${c.report.unreadable.length} unreadable, ${already.length} already damaged (not read).`,
  );
  return c.notRepaired.length + c.report.unreadable.length + already.length;
}
