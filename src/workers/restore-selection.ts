import type { RestoreJobData } from '../jobs/queues.ts';
import type { RestoreSelectionInfo } from '../notifications/restore-messages.ts';

/** What a restore job's messages say of it: its selection, from its data. */
export function selectionInfo(data: RestoreJobData, jobId: string): RestoreSelectionInfo {
  return {
    target: data.target,
    backupId: data.backupId,
    jobId,
    requestedBy: data.requestedBy,
    tables: data.tables,
    schemas: data.schemas,
    database: data.into.database,
    create: data.into.create,
    confirmedBy: data.confirmedBy,
  };
}
