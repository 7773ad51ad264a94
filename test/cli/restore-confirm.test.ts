import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cliRestore } from '../../src/cli/restore-cli.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { LocalStorage } from '../../src/storage/index.ts';
import { appBackedUpByCli } from '../support/app-backups.ts';
import { withClient } from '../support/postgres-helpers.ts';

/** `pg-backup-bot restore <id> --into=<db>` without --yes says what Slack's confirmation says, and changes nothing. */
describe('pg-backup-bot restore --into without --yes', () => {
  let setup: Awaited<ReturnType<typeof appBackedUpByCli>>;
  beforeAll(async () => {
    setup = await appBackedUpByCli(inject('pgUrl'), 'confirm');
  }, 120_000);
  afterAll(() => setup?.cleanup());

  it('names the database, its size and sessions, the backup and its time, and what is lost', async () => {
    const err: string[] = [];
    const { env, app, backupId } = setup;
    const code = await withClient(app.url, () =>
      cliRestore([backupId, `--into=${app.name}`], {
        config: loadConfig(env, 'cli'),
        storage: new LocalStorage(join(env.BACKUP_DIR as string)),
        log: createLogger({ level: 'silent' }),
        io: { out: () => undefined, err: (l) => err.push(l), tty: false },
      }),
    );
    expect(code).toBe(2);
    expect(err.join('\n')).toMatch(
      new RegExp(
        `^This will replace the database ${app.name} on 127\\.0\\.0\\.1:\\d+ \\([\\d.]+ [KM]iB, 1 open connection, which will be ended\\) with backup ${backupId}, taken \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC: everything written to ${app.name} after .+ is lost\\. .+ Add --yes to confirm\\.$`,
      ),
    );
  });
});
