import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { runBackup } from '../../src/postgres/backup/index.ts';
import type { Manifest } from '../../src/storage/index.ts';
import { type AppDatabase, createAppDatabase } from './app-database.ts';
import { backupOptions, tempStorage } from './postgres-helpers.ts';

/** The CLI as a user runs it: `node bin/pg-backup-bot.js …` with only the environment given. */
export const cli = (args: string[], env: Record<string, string>) =>
  execa('node', ['bin/pg-backup-bot.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });

/**
 * The CLI's environment for target `shop` on `databaseUrl`, backing up into `dir` encrypted with a key pair made there
 * (`dir/backup.key`), and one backup taken with it: its id (thrown when the backup fails).
 */
export async function cliBackupInto(dir: string, databaseUrl: string): Promise<{ env: Record<string, string>; id: string }> {
  const keys = await generateKeyPair();
  await writeFile(join(dir, 'backup.key'), keys.identityFileText, { mode: 0o600 });
  const env = {
    DATABASE_URL: databaseUrl,
    TARGET_NAME: 'shop',
    BACKUP_DIR: dir,
    BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
    BACKUP_ENCRYPTION_IDENTITY_FILE: join(dir, 'backup.key'),
  };
  const run = await cli(['backup'], env);
  const id = /^Backup (\S+) OK/.exec(run.stdout)?.[1] ?? '';
  if (!id) throw new Error(`backup failed: ${run.stderr}`);
  return { env, id };
}

/**
 * An application-shaped database (app-database.ts) backed up by the CLI, encrypted with a key pair of its own, as
 * a team's production would be: what the recovery tests start from.
 */
export async function appBackedUpByCli(serverUrl: string, prefix: string) {
  const dir = await mkdtemp(join(tmpdir(), `pgbb-${prefix}-`));
  const keys = await generateKeyPair();
  await writeFile(join(dir, 'backup.key'), keys.identityFileText, { mode: 0o600 });
  const app = await createAppDatabase(serverUrl, prefix);
  const env: Record<string, string> = {
    DATABASE_URL: app.url,
    TARGET_NAME: 'app',
    BACKUP_DIR: join(dir, 'backups'),
    BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
    BACKUP_ENCRYPTION_IDENTITY_FILE: join(dir, 'backup.key'),
  };
  const run = await cli(['backup'], env);
  const backupId = /^Backup (\S+) OK/.exec(run.stdout)?.[1];
  if (run.exitCode !== 0 || !backupId) throw new Error(`the CLI backup failed (${run.exitCode}): ${run.stderr}`);
  return {
    dir,
    app,
    env,
    backupId,
    async cleanup() {
      await app.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The same database backed up in-process into a temporary storage (the restore room's tests). */
export async function appBackedUp(
  serverUrl: string,
  prefix: string,
  o: { ownedByRole?: boolean } = {},
): Promise<{ app: AppDatabase; store: Awaited<ReturnType<typeof tempStorage>>; manifest: Manifest; tempDir: string; cleanup(): Promise<void> }> {
  const app = await createAppDatabase(serverUrl, prefix, o);
  const store = await tempStorage();
  const tempDir = await mkdtemp(join(tmpdir(), `pgbb-${prefix}-`));
  const manifest = await runBackup(backupOptions(app.url, store.storage));
  return {
    app,
    store,
    manifest,
    tempDir,
    async cleanup() {
      await app.drop();
      await store.cleanup();
      await rm(tempDir, { recursive: true, force: true });
    },
  };
}
