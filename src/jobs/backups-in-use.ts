import type { Queues } from './queues.ts';
import { type CliReadersAt, cliReaders } from './cli-readers.ts';
import type { BackupsInUse } from '../storage/index.ts';

/** Jobs that will read their backup: running, or queued to run (a restore test queued at 04:59 reads its backup at 05:01). */
const PENDING = ['active', 'waiting', 'delayed', 'prioritized', 'waiting-children'] as const;

/**
 * What retention must not touch, read from the queues: backups a restore test or a restore is (or is about to
 * be) reading, and the backup jobs running now. A Redis error is thrown: retention never deletes blind.
 */
export async function backupsInUse(queues: Pick<Queues, 'backup' | 'restoreTest' | 'restore'>, readersAt?: CliReadersAt): Promise<BackupsInUse> {
  const [tests, restores, backups, cli] = await Promise.all([
    queues.restoreTest.getJobs([...PENDING]),
    queues.restore.getJobs([...PENDING]),
    queues.backup.getJobs(['active']),
    readersAt ? cliReaders(readersAt) : Promise.resolve([]),
  ]);
  return {
    // The CLI's restore tests too (cli-readers.ts): they are in no queue.
    restoreTests: new Set([...tests.flatMap((j) => (j?.data?.backupId ? [j.data.backupId] : [])), ...cli]),
    restores: new Set(restores.flatMap((j) => (j?.data?.backupId ? [j.data.backupId] : []))),
    // A backup's id is chosen when its job starts (processedOn); it is in no job data.
    runningBackups: backups.flatMap((j) => (j?.data?.target ? [{ target: j.data.target, startedAt: new Date(j.processedOn ?? j.timestamp) }] : [])),
  };
}

/** The backups restores and restore tests are reading (queued or running): what must not be rewritten under them. */
export const readersOf = (u: BackupsInUse): ReadonlySet<string> => new Set([...u.restoreTests, ...u.restores]);
