import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Queue } from 'bullmq';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { restoreTestCommand } from '../../src/commands/restore-test-command.ts';
import { loadConfig } from '../../src/config.ts';
import type { RestoreTestJobData } from '../../src/jobs/queues.ts';
import { silentLog } from '../support/postgres-helpers.ts';
import { tempRoot } from '../storage/fixtures.ts';
import { store } from '../storage/retention-fixtures.ts';

/** `/restore-test latest` with every stored backup damaged: what it says, and the way back it names when there is one. */
describe('/restore-test latest with no good backup', () => {
  let t: Awaited<ReturnType<typeof tempRoot>>;
  let dir: string;
  beforeEach(async () => {
    t = await tempRoot();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-rtc-'));
    const lost = await store(t.storage, 'shop', new Date(), 1, 30);
    await rm(join(t.root, 'shop', lost.backupId, 'database.pgdump.zst'));
  });
  afterEach(async () => {
    await t.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const ask = async (yaml: string) => {
    await writeFile(join(dir, 'bot.yml'), yaml);
    const config = loadConfig({ BOT_CONFIG: join(dir, 'bot.yml'), SHOP_URL: 'postgres://pgbb@127.0.0.1:1/shop', BACKUP_DIR: t.root }, 'cli');
    // Nothing is queued on this path: a queue that throws proves it.
    const queue = new Proxy({}, { get: () => () => Promise.reject(new Error('nothing may be queued')) }) as unknown as Queue<RestoreTestJobData>;
    const reply = await restoreTestCommand({ config, queue, storage: t.storage, log: silentLog })({ text: 'latest', userId: 'U1', userName: 'u' } as never);
    return reply.text;
  };

  it('says they are damaged, and with a WAL archive names point-in-time recovery, which does not need them', async () => {
    const plain = await ask('targets:\n  - name: shop\n    urlEnv: SHOP_URL\n    environment: production\n');
    expect(plain).toBe(
      ':warning: There is no restorable backup of *shop* to test: 1 stored is damaged (`/backup list shop` says why). Take a new one with `/backup now shop`, and check the storage.',
    );
    const withArchive = await ask('targets:\n  - name: shop\n    urlEnv: SHOP_URL\n    environment: production\n    pitr: { urlEnv: SHOP_URL }\n');
    expect(withArchive).toBe(
      `${plain} Point-in-time recovery does not need them: \`/backup list shop\` shows its window, \`/restore-test pitr shop\` tests it, and \`pg-backup-bot restore-pitr\` restores (README "Point-in-time recovery").`,
    );
  });
});
