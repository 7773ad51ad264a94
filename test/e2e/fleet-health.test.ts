import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { slash, startHarness, type Harness } from './harness.ts';

/**
 * `/backup health` for a fleet: past 20 targets it acks at once ("Checking…") and the answer, summed up within one
 * message, replaces that through the response URL (a 200-target check took 0.4–0.7 s: too long for an ack).
 */

let h: Harness;
let cfg: string;
const TARGETS = 24;

beforeAll(async () => {
  cfg = join(tmpdir(), `pgbb-fleet-health-${process.pid}-${Date.now()}.yml`);
  const targets = Array.from({ length: TARGETS }, (_, i) => [
    `  - name: svc-${String(i).padStart(2, '0')}`,
    '    urlEnv: DATABASE_URL',
    '    environment: staging',
  ]);
  await writeFile(cfg, ['targets:', ...targets.flat(), ''].join('\n'));
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), env: { BOT_CONFIG: cfg, FIRST_BACKUP_AT_START: 'false' } });
});

afterAll(async () => {
  await h?.stop();
  await rm(cfg, { force: true });
});

describe('/backup health with more targets than one answer shows', () => {
  it('acks at once, then replaces the ack with the summed-up answer through the response URL', async () => {
    const before = h.slack.responses.length;
    const ack = await slash(h, '/backup', 'health');
    expect(ack.status).toBe(200);
    expect(ack.text).toBe(`Checking the health of ${TARGETS} targets…`);
    const answer = await h.slack.waitForResponse((r) => h.slack.responses.indexOf(r) >= before, 10_000);
    const body = answer.body as { text?: string; replace_original?: boolean; response_type?: string };
    expect(body).toMatchObject({ replace_original: true, response_type: 'ephemeral' });
    // None has a backup yet: each waits for its first one (a quiet warning), named within one answer.
    expect(body.text).toMatch(new RegExp(`^\\*${TARGETS} targets:\\* 0 healthy, ${TARGETS} with problems\\.`));
    expect(body.text?.length).toBeLessThanOrEqual(3900);
    expect(body.text).toContain('*svc-00*');
    // One target in full, in the ack itself.
    expect((await slash(h, '/backup', 'health svc-03')).text).toMatch(/^\*svc-03\*\n/);
  });
});
