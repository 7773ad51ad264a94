import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildHome } from '../../src/commands/home.ts';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { createHealthState } from '../../src/health/state.ts';
import { runBaseBackup } from '../../src/postgres/pitr/base-backup.ts';
import { LocalWalStore, type WalEntry } from '../../src/postgres/pitr/wal-store.ts';
import { segmentOf } from '../../src/postgres/pitr/window.ts';
import { findPgProgram, findPgTools } from '../../src/postgres/tools.ts';
import { healthProcessor } from '../../src/workers/health-worker.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { completeSegment } from '../support/pitr-archive.ts';
import { type Harness, slash, startHarness } from './harness.ts';

/**
 * The recoverable window and the archive's two health conditions, as people see them through Slack (the strict
 * stand-in) and PagerDuty, on a server of their own: `shop` streams its WAL, and loses a segment from storage;
 * `idle` has a slot nobody consumes (its receiver cannot log in) while the server writes past its small limit.
 */
let h: Harness;
let pg: EphemeralPostgres;
let cfg: string;
const tag = randomBytes(3).toString('hex');
const shopSlot = `pgbb_shop_${tag}`;
const idleSlot = `pgbb_idle_${tag}`;
const LIMIT = 32 * 1024 * 1024;

beforeAll(async () => {
  pg = await startEphemeralPostgres();
  cfg = join(tmpdir(), `pgbb-walhealth-${process.pid}-${tag}.yml`);
  await writeFile(
    cfg,
    [
      'encryption: age',
      'targets:',
      '  - name: shop',
      '    urlEnv: SHOP_URL',
      '    environment: production',
      // A person takes the base backups here (afterBreak is off): base-backup-after-break.test.ts has the bot do it.
      `    pitr: { urlEnv: SHOP_REPLICATION_URL, slot: ${shopSlot}, baseBackup: { afterBreak: false } }`,
      '  - name: idle',
      '    urlEnv: SHOP_URL',
      '    environment: production',
      `    pitr: { urlEnv: IDLE_REPLICATION_URL, slot: ${idleSlot}, slotMaxBytes: ${LIMIT} }`,
      '',
    ].join('\n'),
  );
  // The idle slot reserves WAL from now on; its receiver logs in as a role the server does not have.
  await withClient(pg.url, (c) => c.query('SELECT pg_create_physical_replication_slot($1, true)', [idleSlot]));
  h = await startHarness({
    pgUrl: inject('pgUrl'),
    redisUrl: inject('redisUrl'),
    env: {
      BOT_CONFIG: cfg,
      SHOP_URL: pg.url,
      SHOP_REPLICATION_URL: pg.url,
      IDLE_REPLICATION_URL: pg.url.replace('postgres://postgres@', 'postgres://pgbb_no_such_role@'),
    },
  });
});

afterAll(async () => {
  await h?.stop();
  await pg?.stop();
  await rm(cfg, { force: true });
});

const until = async <T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

const store = () => new LocalWalStore(h.backupDir, 'shop');
const archived = (name: string) => until(`WAL ${name} archived`, async () => ((await store().list()).some((e) => e.name === name) ? true : undefined));

async function baseBackup() {
  const tools = await findPgTools({ serverMajor: 15 });
  const pgBasebackup = await findPgProgram('pg_basebackup', tools.pgDump, tools.major);
  if (!pgBasebackup) throw new Error('pg_basebackup is not installed');
  return runBaseBackup({
    target: 'shop',
    root: h.backupDir,
    replicationUrl: pg.url,
    pgBasebackup,
    zstd: 'zstd',
    level: 2,
    recipients: h.config.encryption.recipients,
    ageEngine: undefined,
  });
}

function runHealth() {
  const d = h.service.deps;
  return healthProcessor({
    config: d.config,
    storage: d.storage,
    runs: d.runs,
    state: createHealthState(d.workerRedis, d.config.queuePrefix),
    backupQueue: d.queues.backup,
    notifier: d.notifier,
    escalation: d.escalation,
    log: d.log,
  })({ id: `health-${Date.now()}` } as Job);
}

const pages = (target: string, condition: string, action: string) =>
  h.pd.events.filter((e) => e.dedup_key === `pg-backup-bot/${target}/${condition}` && e.event_action === action);
const settle = (target: string, condition: string, action: string) =>
  until(`a ${action} of ${target}/${condition}`, async () => pages(target, condition, action)[0], 30_000);

describe('the recoverable window and the WAL archive’s health', () => {
  let missing: string;

  it('shows the window in /backup list, /backup health and the App Home once a base backup and WAL after it are archived', async () => {
    await until('the shop stream', async () =>
      (await slash(h, '/backup', 'status')).text.includes(`(slot \`${shopSlot}\`): :white_check_mark:`) ? true : undefined,
    );
    const base = await baseBackup();
    // The segment to lose: after one whose WAL reaches past the base backup's finish (segment-time.ts: a segment
    // archived while the server stands at its end reaches the time it is archived; one the server had passed, its
    // last sample before that), with a newer one archived behind it. Before it, the window is from the base backup's
    // end to that one's time; without one, nothing before the gap would be recoverable.
    const last = segmentOf(base.endLsn, base.timeline);
    const reaching = (after: WalEntry[]) => after.findIndex((e) => Date.parse(e.archivedAt) >= Date.parse(base.finishedAt));
    let after: WalEntry[] = [];
    for (let i = 0; i < 8 && (reaching(after) < 0 || after.length < reaching(after) + 3); i++) {
      await archived(await completeSegment(pg.url));
      after = (await store().list()).filter((e) => e.name > last && !e.name.endsWith('.history'));
    }
    missing = after[reaching(after) + 1]?.name as string;
    expect(after.length).toBeGreaterThanOrEqual(reaching(after) + 3);
    const list = (await slash(h, '/backup', 'list shop')).text;
    expect(list).toMatch(/\*Point-in-time recovery\*\n• \*shop\*: recoverable to any moment from <!date\^\d+\^[^|]+\|[^>]+> to <!date\^\d+\^[^|]+\|[^>]+>$/m);
    const health = (await slash(h, '/backup', 'health shop')).text;
    expect(health).toMatch(/:white_check_mark: WAL archive: no segment missing; recoverable to any moment from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC to /);
    expect(health).toMatch(/:white_check_mark: replication slot: slot pgbb_shop_\w+ holds [\d.]+ (B|KB|MB) of WAL \(limit 8\.0 GB\); a receiver is connected/);
    const d = h.service.deps;
    const home = JSON.stringify((await buildHome({ config: d.config, storage: d.storage, queue: d.queues.backup, runs: d.runs })).blocks);
    expect(home).toContain('Point-in-time recovery: recoverable to any moment from <!date^');
  });

  it('names a segment removed from storage as a gap in /backup list and /backup health, and pages wal-gap once', async () => {
    const entry = (await store().list()).find((e) => e.name === missing);
    await unlink(join(store().dir, entry?.file as string));
    const list = (await slash(h, '/backup', 'list shop')).text;
    expect(list).toContain(`:rotating_light: a gap ends it: segment ${missing} is missing; take a new base backup (\`pg-backup-bot base-backup shop\`)`);
    const health = (await slash(h, '/backup', 'health shop')).text;
    expect(health).toContain(`:rotating_light: gap in the WAL archive: segment ${missing} is missing from the WAL archive: recovery cannot cross it`);
    expect((await runHealth()).failing).toContain('shop/wal-gap');
    await runHealth();
    const page = await settle('shop', 'wal-gap', 'trigger');
    expect(pages('shop', 'wal-gap', 'trigger')).toHaveLength(1);
    expect(page.payload?.severity).toBe('critical');
    expect(page.payload?.summary).toBe(`The WAL archive of shop has a gap: segment ${missing} is missing`);
    expect([...h.slack.messages.values()].filter((m) => (m.text ?? '').startsWith('shop: gap in the WAL archive'))).toHaveLength(1);
    // Indexed as archived, then gone from storage: damage too, said by its own condition (it outlives the gap).
    expect(health).toContain(`stored backups damaged: WAL ${missing} (indexed as archived, its file is gone from the archive`);
  });

  it('clears the gap once a new base backup and WAL after it are archived: the window starts again after it', async () => {
    const base = await baseBackup();
    // WAL reaching past its finish (as above: at most a few segments, each archived before the next is written).
    for (let i = 0; i < 8; i++) {
      await archived(await completeSegment(pg.url));
      if ((await store().list()).some((e) => e.name > segmentOf(base.endLsn, base.timeline) && Date.parse(e.archivedAt) >= Date.parse(base.finishedAt))) break;
    }
    const r = await runHealth();
    expect(r.failing).not.toContain('shop/wal-gap');
    await settle('shop', 'wal-gap', 'resolve');
    // The hole it left behind the new base backup is not forgotten: the lost file still fails `damaged` (an error
    // page) until retention passes it, where the gap's own condition no longer does.
    expect(r.failing).toContain('shop/damaged');
    expect((await settle('shop', 'damaged', 'trigger')).payload?.summary).toBe('1 WAL file of shop is lost from the archive');
    const list = (await slash(h, '/backup', 'list shop')).text;
    expect(list).toMatch(
      // Either stretch may lie within one second here (a quick machine: CI at 8 minutes): then it is said to the
      // millisecond.
      new RegExp(
        `recoverable to any moment from (<!date[^>]+> to <!date[^>]+>|\\S+Z to \\S+Z \\(less than a second\\)) \\(after a gap: segment ${missing} is missing, and from (<!date|\\S+Z to \\S+Z \\(less than a second\\))`,
      ),
    );
  });

  it('fails wal-slot for a slot nobody consumes once the server writes past its limit, recommending max_slot_wal_keep_size', async () => {
    for (let i = 0; i < 3; i++) await completeSegment(pg.url);
    const health = (await slash(h, '/backup', 'health idle')).text;
    expect(health).toMatch(
      new RegExp(
        `:rotating_light: replication slot holding WAL: slot ${idleSlot} holds [\\d.]+ MB of WAL on the server \\(127\\.0\\.0\\.1:${pg.port}\\), over the limit of 32\\.0 MB \\(pitr\\.slotMaxBytes\\); no receiver is connected`,
      ),
    );
    expect(health).toContain(
      "max_slot_wal_keep_size is unlimited (-1) on the server, so an abandoned slot fills its disk: set it, e.g. `ALTER SYSTEM SET max_slot_wal_keep_size = '128MB'; SELECT pg_reload_conf();`",
    );
    expect((await runHealth()).failing).toContain('idle/wal-slot');
    const page = await settle('idle', 'wal-slot', 'trigger');
    expect(page.payload?.severity).toBe('critical');
    const metrics = await (await fetch(`${h.metricsUrl}/metrics`)).text();
    const retained = Number(/^pgbb_wal_slot_retained_bytes\{target="idle"\} (\d+)$/m.exec(metrics)?.[1]);
    expect(retained).toBeGreaterThan(LIMIT);
    expect(metrics).toMatch(/^pgbb_wal_slot_keep_size_unlimited\{target="idle"\} 1$/m);
    expect(metrics).toMatch(/^pgbb_wal_gaps\{target="shop"\} 1$/m);
    expect(metrics).toMatch(/^pgbb_wal_window_end_timestamp_seconds\{target="shop"\} \d+/m);
  });

  it('finds a segment rotted in place through the daily retention run’s scrub: said in the channel, set aside, paged as the gap that ends the window', async () => {
    const rotten = await completeSegment(pg.url);
    await archived(rotten);
    await archived(await completeSegment(pg.url));
    const entry = (await store().list()).find((e) => e.name === rotten);
    const path = join(store().dir, entry?.file as string);
    const bytes = await readFile(path);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
    await writeFile(path, bytes);
    // The same size: no listing sees it.
    expect((await slash(h, '/backup', 'list shop')).text).not.toContain(rotten);
    // Each daily run reads a seventh of the archive, longest unread first: the newest segment within a week of runs.
    const said = (m: { text?: string | undefined }) => (m.text ?? '').includes(`:rotating_light: WAL ${rotten} of shop is damaged`);
    for (let day = 0; day < 8 && ![...h.slack.messages.values()].some(said); day++) {
      const job = await h.service.deps.queues.retention.add('retention', { dryRun: false });
      await until('the retention run', async () => (['completed', 'failed'].includes(await job.getState()) ? true : undefined));
    }
    const post = [...h.slack.messages.values()].find(said)?.text ?? '';
    expect(post).toContain(`is damaged: the checksum scrub found its stored file does not match its sha256 (read `);
    expect(post).toContain(
      `three reads alike; moved aside as ${path}.damaged. Point-in-time recovery cannot replay past it: the recoverable window ends there until a base backup taken after it opens a new one (\`/backup now --physical shop\`).`,
    );
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.damaged`)).toBe(true);
    // From here on it is a gap, as a segment removed by hand is, and damage of its own kind.
    expect((await slash(h, '/backup', 'list shop')).text).toContain(`:rotating_light: a gap ends it: segment ${rotten} is missing`);
    const health = (await slash(h, '/backup', 'health shop')).text;
    expect(health).toContain(
      `WAL ${rotten} (its stored file was read three times, never as recorded (by the checksum scrub, or by a fetch of it), and moved aside (.damaged)`,
    );
    const cliEnv = () => ({
      PATH: process.env.PATH ?? '',
      BOT_CONFIG: cfg,
      BACKUP_DIR: h.backupDir,
      BACKUP_ENCRYPTION_RECIPIENT: h.config.encryption.recipients.join(','),
      BACKUP_ENCRYPTION_IDENTITY_FILE: h.identityFile,
      SHOP_URL: pg.url,
      SHOP_REPLICATION_URL: pg.url,
      IDLE_REPLICATION_URL: pg.url,
    });
    // And in the terminal, where restore-pitr's refusals send people: the window to the second, the gap that ends it.
    const listed = await execa('node', ['bin/pg-backup-bot.js', 'list', 'shop'], {
      env: cliEnv(),
      extendEnv: false,
      reject: false,
    });
    expect(listed.exitCode, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(
      new RegExp(
        `\\nPoint-in-time recovery\\n• shop: recoverable to any moment from (\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC to \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC|\\S+Z to \\S+Z \\(less than a second\\)) — a gap ends it: segment ${rotten} is missing \\(\\+1 more\\); take a new base backup \\(pg-backup-bot base-backup shop\\)`,
      ),
    );
    // The scrub again from the terminal: nothing newly damaged, and still not an all-clear (exit 1).
    const again = await execa('node', ['bin/pg-backup-bot.js', 'scrub', '--all'], {
      env: cliEnv(),
      extendEnv: false,
      reject: false,
    });
    expect(again.exitCode).toBe(1);
    expect(again.stdout).toContain(`ALREADY DAMAGED WAL ${rotten} of shop: set aside as damaged (.damaged): the recoverable window has a gap there.`);
    expect(again.stdout).toMatch(
      /Read back \d+ of \d+ files of the point-in-time archive \([^)]+ matching\): 0 found damaged, 0 unreadable, \d+ already damaged \(not read\); [1-9]\d* WAL files decrypted and decompressed whole\./,
    );
    expect(again.stdout).not.toContain('NOT DECODED');
    const r = await runHealth();
    expect(r.failing).toContain('shop/damaged');
    expect(r.failing).toContain('shop/wal-gap');
    // Paged already for the WAL lost earlier (once per episode in PagerDuty: the incident stays open, not resolved), the
    // channel hears the new set of damaged files at once.
    const told = await until('the channel told of the set-aside file', async () =>
      [...h.slack.messages.values()].find((m) => (m.text ?? '').startsWith('shop: stored backups damaged') && (m.text ?? '').includes(`WAL ${rotten} (`)),
    );
    expect(told.text).toContain(
      `WAL ${rotten} (its stored file was read three times, never as recorded (by the checksum scrub, or by a fetch of it), and moved aside (.damaged)`,
    );
    expect(pages('shop', 'damaged', 'resolve')).toHaveLength(0);
    // The gap paged is the one that ends the window now, not the older one behind the newer base backup.
    const gapPage = await until('a second wal-gap page', async () => pages('shop', 'wal-gap', 'trigger')[1]);
    expect(gapPage.payload?.summary).toBe(`The WAL archive of shop has a gap: segment ${rotten} is missing`);
  });
});
