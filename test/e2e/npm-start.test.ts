import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { freePort } from '../../src/dev/ephemeral.ts';
import { createTestDatabase } from '../support/databases.ts';
import { startPagerDutyServer, type PagerDutyServer } from '../support/pagerduty-server.ts';
import { startSlackServer, type SlackServer } from '../support/slack-server.ts';
import { BOT_TOKEN, ROUTING_KEY, SIGNING_SECRET, loadSampleSchema, slash } from './harness.ts';

const startBot = (env: Record<string, string>) => execa('node', ['bin/pg-backup-bot.js', 'all'], { env, reject: false, all: true, buffer: false });

/**
 * The bot as a deployer runs it: `bin/pg-backup-bot.js all` in its own process, configured only through the
 * environment contract, PagerDuty's TLS trusted through NODE_EXTRA_CA_CERTS, stopped with SIGTERM.
 */
describe('pg-backup-bot all (what npm start runs)', () => {
  let slack: SlackServer;
  let pd: PagerDutyServer;
  let dir: string;
  let child: ReturnType<typeof startBot>;
  let port: number;
  let metricsPort: number;
  let dbDrop: () => Promise<void>;
  let output = '';

  beforeAll(async () => {
    slack = await startSlackServer({ botToken: BOT_TOKEN, channels: { incidents: 'C0INCIDENTS' } });
    pd = await startPagerDutyServer({ routingKey: ROUTING_KEY });
    const db = await createTestDatabase(inject('pgUrl'), 'start');
    dbDrop = db.drop;
    await loadSampleSchema(db.url);
    dir = await mkdtemp(join(tmpdir(), 'pgbb-start-'));
    await writeFile(join(dir, 'pd-ca.pem'), pd.ca);
    // Production targets refuse unencrypted backups: the deployer sets a public key (the secret stays elsewhere).
    const keys = await generateKeyPair();
    port = await freePort();
    metricsPort = await freePort();
    child = startBot({
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_API_URL: slack.url,
      SLACK_CHANNEL: '#incidents',
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
      REDIS_URL: inject('redisUrl'),
      QUEUE_PREFIX: `{start-${port}}`,
      DATABASE_URL: db.url,
      BACKUP_DIR: join(dir, 'backups'),
      BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
      PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
      PAGERDUTY_EVENTS_URL: pd.eventsUrl,
      NODE_EXTRA_CA_CERTS: join(dir, 'pd-ca.pem'),
      LOG_LEVEL: 'info',
    });
    child.all?.on('data', (c: Buffer) => (output += c.toString()));
    const end = Date.now() + 30_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${metricsPort}/healthz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (Date.now() > end || child.exitCode !== null) throw new Error(`the bot did not come up:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await Promise.allSettled([slack?.close(), pd?.close(), dbDrop?.()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('takes the first backup of a target that has none, answers a signed /backup now, posts the verdict, and stops cleanly on SIGTERM', async () => {
    const succeeded = (c: { method: string; body: Record<string, unknown> }) => c.method === 'chat.update' && /succeeded/.test(String(c.body.text));
    // A new install is backed up at start (FIRST_BACKUP_AT_START), without anyone asking.
    await slack.waitFor(succeeded, 60_000);
    expect(JSON.stringify(slack.calls.filter(succeeded))).toMatch(/first backup/);
    // Its job ends just after the verdict; until then a /backup now would be answered with it. The audit trail says when.
    const audit = join(dir, 'backups', '_audit', 'audit.jsonl');
    const ended = Date.now() + 30_000;
    const completed = /"what":"backup".*"result":"completed/;
    while (!completed.test(await readFile(audit, 'utf8').catch(() => '')) && Date.now() < ended) await new Promise((r) => setTimeout(r, 100));
    expect(await readFile(audit, 'utf8')).toMatch(completed);
    const res = await slash({ eventsUrl: `http://127.0.0.1:${port}/slack/events`, slack }, '/backup', 'now');
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(3000);
    expect(JSON.stringify(res.body)).toMatch(/queued: job/);
    const end = Date.now() + 60_000;
    while (slack.calls.filter(succeeded).length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect(slack.calls.filter(succeeded)).toHaveLength(2);
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(output).toMatch(/shutting down/);
    for (const secret of [SIGNING_SECRET, BOT_TOKEN, ROUTING_KEY]) expect(output).not.toContain(secret);
  });
});
