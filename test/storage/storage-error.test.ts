import { describe, expect, it } from 'vitest';
import { storageError } from '../../src/storage/fs-util.ts';

const errno = (code: string) => Object.assign(new Error(`${code}: failed, open '/var/backups/pgbb/shop/x'`), { code });

/** What a filesystem failure says: the cause people can act on, not a guess (QA: a read-only mount was "owner and permissions"). */
describe('storageError', () => {
  it('says a read-only filesystem is one, with where to look', () => {
    expect(storageError(errno('EROFS'), 'local:/var/backups/pgbb', 'write').userMessage).toBe(
      'The bot may not write in local:/var/backups/pgbb (EROFS): its filesystem is mounted read-only, often after disk errors; check `findmnt` and the kernel log (`dmesg`) on that host.',
    );
  });

  it('keeps owners and permissions for a refusal, and a full disk for ENOSPC', () => {
    expect(storageError(errno('EACCES'), 'local:/var/backups/pgbb', 'write').userMessage).toBe(
      "The bot may not write in local:/var/backups/pgbb (EACCES); check the backup directory's owner and permissions.",
    );
    expect(storageError(errno('ENOSPC'), 'local:/var/backups/pgbb', 'write').code).toBe('disk_full');
  });
});
