import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findBackup, latestBackup, targetOfBackupId, type LocalStorage } from '../../src/storage/index.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { tempRoot } from './fixtures.ts';

describe('catalog', () => {
  let storage: LocalStorage;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ storage, cleanup } = await tempRoot());
  });
  afterEach(() => cleanup());

  it('derives the target from a backup id', () => {
    expect(targetOfBackupId('pagila_prod-20261124T232411Z')).toBe('pagila_prod');
    expect(targetOfBackupId('my-app-20261124T232411Z-2')).toBe('my-app');
    expect(targetOfBackupId('nonsense')).toBeNull();
  });

  it('finds the latest backup of a target by start time', async () => {
    expect(await latestBackup(storage, 'app')).toBeNull();
    await storeBackup(storage, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00Z');
    const newer = await storeBackup(storage, 'app', 'app-20260102T000000Z', '2026-01-02T00:00:00Z');
    await storeBackup(storage, 'other', 'other-20270101T000000Z', '2027-01-01T00:00:00Z');
    expect(await latestBackup(storage, 'app')).toEqual(newer);
  });

  it('for an id with no backup, names the one nearest in time and where the list is', async () => {
    await storeBackup(storage, 'app', 'app-20260101T020000Z', '2026-01-01T02:00:00Z');
    await storeBackup(storage, 'app', 'app-20260102T020000Z', '2026-01-02T02:00:00Z');
    const seeList = (t: string) => `\`/backup list ${t}\``;
    await expect(findBackup(storage, 'app-20260102T020003Z', seeList)).rejects.toThrow(
      'There is no finished backup app-20260102T020003Z of app. The nearest is `app-20260102T020000Z` (3.0 s earlier). `/backup list app` shows its backups.',
    );
    // A target with no backup at all: said, with the targets that have some (QA: sent to a list that had nothing).
    await expect(findBackup(storage, 'other-20260102T020003Z', seeList)).rejects.toThrow(
      'There is no finished backup other-20260102T020003Z of other. No backup of other is stored at all: the targets with backups are app.',
    );
    // A time the clock lacks is no backup id (QA: "T999999Z" was answered with a backup 85 h earlier).
    await expect(findBackup(storage, 'app-20260102T999999Z', seeList)).rejects.toThrow('"app-20260102T999999Z" is not a backup id');
    await expect(findBackup(storage, 'app-20261302T020000Z', seeList)).rejects.toThrow('"app-20261302T020000Z" is not a backup id');
  });

  it('for an id whose target has no backup, names the stored target it nearly is (QA: `shopp-…` pointed at `list shopp`)', async () => {
    await storeBackup(storage, 'shop', 'shop-20260101T020000Z', '2026-01-01T02:00:00Z');
    await storeBackup(storage, 'shop', 'shop-20260102T020000Z', '2026-01-02T02:00:00Z');
    const seeList = (t: string) => `\`pg-backup-bot list ${t}\``;
    await expect(findBackup(storage, 'shopp-20260102T020000Z', seeList)).rejects.toThrow(
      'There is no finished backup shopp-20260102T020000Z of shopp. No backup of shopp is stored: did you mean `shop-20260102T020000Z` (target shop)? `pg-backup-bot list shop` shows its backups.',
    );
    await expect(findBackup(storage, 'shpo-20260102T020009Z', seeList)).rejects.toThrow(
      'No backup of shpo is stored: did you mean target shop? The nearest is `shop-20260102T020000Z` (9.0 s earlier). `pg-backup-bot list shop` shows its backups.',
    );
    // Nothing near: the targets with backups, named.
    await expect(findBackup(storage, 'billing-20260102T020000Z', seeList)).rejects.toThrow(
      'There is no finished backup billing-20260102T020000Z of billing. No backup of billing is stored at all: the targets with backups are shop.',
    );
  });

  it('finds a backup by id alone', async () => {
    const m = await storeBackup(storage, 'my-app', 'my-app-20260101T000000Z', '2026-01-01T00:00:00Z');
    expect(await findBackup(storage, m.backupId)).toEqual(m);
    await expect(findBackup(storage, 'my-app-20990101T000000Z')).rejects.toMatchObject({ code: 'backup_not_found' });
    await expect(findBackup(storage, '../../etc/passwd')).rejects.toMatchObject({ code: 'bad_request' });
  });
});
