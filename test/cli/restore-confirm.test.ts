import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cliRestore } from '../../src/cli/restore-cli.ts';
import { spacedName } from '../../src/cli/new-server.ts';
import { parseRestoreText } from '../../src/commands/restore-text.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { LocalStorage } from '../../src/storage/index.ts';
import { appBackedUpByCli, cli } from '../support/app-backups.ts';
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
        `^This will replace the database ${app.name} on 127\\.0\\.0\\.1:\\d+ \\([\\d.]+ [KM]B, 1 open connection, which will be ended\\) with backup ${backupId}, taken \\w{3} \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC[+-]\\d\\d:\\d\\d: everything written to ${app.name} after .+ is lost\\. .+ Add --yes to confirm\\.$`,
      ),
    );
  });

  const run = async (args: string[], env = setup.env) => {
    const err: string[] = [];
    const code = await cliRestore(args, {
      config: loadConfig(env, 'cli'),
      storage: new LocalStorage(join(env.BACKUP_DIR as string)),
      log: createLogger({ level: 'silent' }),
      io: { out: () => undefined, err: (l) => err.push(l), tty: false },
    });
    return { code, err: err.join('\n') };
  };

  it('says when the backup is of another database than the one replaced, and when there is none to replace', async () => {
    const { app, backupId } = setup;
    const otherDb = `${app.name}_other`;
    await withClient(inject('pgUrl'), (c) => c.query(`CREATE DATABASE ${otherDb}`));
    try {
      const other = await run([backupId, `--into=${otherDb}`]);
      expect(other.code).toBe(2);
      expect(other.err).toContain(`This backup is of the database ${app.name}, not ${otherDb}: ${otherDb} would hold ${app.name}'s contents.`);
    } finally {
      await withClient(inject('pgUrl'), (c) => c.query(`DROP DATABASE IF EXISTS ${otherDb}`));
    }
    // The server's own databases are refused, --yes or not (QA: --into=postgres --yes replaced the maintenance database).
    for (const [db, what] of [
      ['postgres', "the server's maintenance database"],
      ['template1', 'a template every new database on the server is copied from'],
    ]) {
      const refused = await run([backupId, `--into=${db}`, '--yes']);
      expect(refused.code).not.toBe(0);
      expect(refused.err).toContain(`${db} is ${what}: the bot does not replace it with a backup of ${app.name}. Nothing was started.`);
      // Refused at the first step, not asked for a --yes it would then refuse (QA).
      const asked = await run([backupId, `--into=${db}`]);
      expect(asked.code).toBe(1);
      expect(asked.err).toContain(`Restore FAILED: ${db} is ${what}: the bot does not replace it`);
      expect(asked.err).not.toContain('--yes');
    }
    // Selective: the tables and schemas it overwrites, named (QA: "the named tables"), and nothing is touched.
    const selective = await run([backupId, `--into=${app.name}`, '--table=public."User"', '--schema=billing']);
    expect(selective).toEqual({
      code: 2,
      err: `Restoring into the existing database "${app.name}" overwrites table public."User", schema billing there with their contents from the backup: rows written since in them are lost. Add --yes to confirm.`,
    });
    const none = await run([backupId, '--into=no_such_db']);
    expect(none).toEqual({
      code: 2,
      err: `There is no database "no_such_db" on ${new URL(app.url).host}, so nothing to replace; nothing was started. To restore it as a new database: pg-backup-bot restore ${backupId} (then rename it).`,
    });
  });

  it('a table name with a space whose shell quotes are gone is said with the quoting that names it (QA: "Log" is not an option)', async () => {
    const { backupId } = setup;
    const spaced = await run([backupId, '--table=Audit Log']);
    expect(spaced.code).toBe(2);
    expect(spaced.err.split('\n')[0]).toBe(`"--table=Audit Log": a name with a space needs SQL's double quotes inside the shell's: --table='"Audit Log"'.`);
    // With its schema: the part with the space quoted, not the whole (QA: '"public.order items"' named no table).
    const qualified = await run([backupId, '--table=public.Audit Log']);
    expect(qualified.err.split('\n')[0]).toBe(
      `"--table=public.Audit Log": a name with a space needs SQL's double quotes inside the shell's: --table='public."Audit Log"'.`,
    );
    const asSuggested = parseRestoreText(`${backupId} --table=public."Audit Log"`, 'cli');
    expect(asSuggested).toMatchObject({ verb: 'restore', tables: ['public."Audit Log"'] });
    // A part SQL would fold quoted too (Sales → sales), and a value given apart from its option joined to it.
    expect(spacedName(['--table=Sales.Order Items'])).toBe(
      `"--table=Sales.Order Items": a name with a space needs SQL's double quotes inside the shell's: --table='"Sales"."Order Items"'.`,
    );
    expect(spacedName(['--schema', 'Audit Log'])).toBe(
      `"Audit Log": a name with a space needs SQL's double quotes inside the shell's, joined to its option: --schema='"Audit Log"'.`,
    );
  });

  it('with the target’s server down, a failed restore says how to restore onto another server', async () => {
    const { env, backupId } = setup;
    const down = await run([backupId], { ...env, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/app' });
    expect(down.code).toBe(1);
    expect(down.err).toMatch(/Restore FAILED: Could not connect to the database server at 127\.0\.0\.1:1 \(connection refused\)/);
    expect(down.err).toContain(
      `If that server is gone: pg-backup-bot restore ${backupId} --to-url-env=NAME --with-globals restores onto another one (README "Disaster recovery").`,
    );
  });

  it('says when newer good backups exist than the one a replacement would restore, naming the newest (QA)', async () => {
    const { env, app, backupId } = setup;
    const newer = /^Backup (\S+) OK/.exec((await cli(['backup'], env)).stdout)?.[1] ?? '';
    expect(newer).not.toBe('');
    const asked = await run([backupId, `--into=${app.name}`]);
    expect(asked.code).toBe(2);
    expect(asked.err).toMatch(
      new RegExp(
        `${backupId.replace(/-\d{8}T.*$/, '')} has a newer good backup: the newest is ${newer}, taken \\w{3} \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC[+-]\\d\\d:\\d\\d; this one loses everything written since `,
      ),
    );
    // The newest itself: nothing newer to say.
    expect((await run([newer, `--into=${app.name}`])).err).not.toContain('newer good backup');
  });
});
