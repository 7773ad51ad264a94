import { describe, expect, it } from 'vitest';
import { checkTarget } from '../../src/health/collect.ts';
import type { Manifest } from '../../src/storage/manifest.ts';
import type { Storage } from '../../src/storage/types.ts';
import { HOUR, NOW, ago, makeManifest, pick } from './fixtures.ts';

const RECIPIENT = `age1${'q'.repeat(58)}`;
const encrypted = (m: Manifest): Manifest => ({
  ...m,
  artifacts: m.artifacts.map((a) => ({ ...a, file: `${a.file}.age`, encryption: { scheme: 'age', recipients: [RECIPIENT] } })),
});

/** Only what collectHealthInput reads from storage. */
function storageOf(backups: Manifest[]): Storage {
  return { list: async () => backups, listRecords: async () => [] } as unknown as Storage;
}

const verdict = async (backups: Manifest[], encryptionRequired?: (t: string) => boolean) =>
  pick(
    (await checkTarget({ storage: storageOf(backups), runs: null, backupQueue: null, ...(encryptionRequired ? { encryptionRequired } : {}) }, 'shop', NOW))
      .results,
    'unencrypted',
  );

describe('the unencrypted condition, from what storage holds', () => {
  const older = makeManifest({ startedAt: ago(27 * HOUR) });
  const newer = makeManifest({ startedAt: ago(3 * HOUR) });

  it('fails (warning) when the newest backup of a production target is unencrypted, even after encrypted ones', async () => {
    const r = await verdict([encrypted(older), newer]);
    expect(r).toMatchObject({ status: 'failing', severity: 'warning' });
    expect(r.evidence).toContain(newer.backupId);
  });

  it('clears once the newest backup is encrypted, every artifact included', async () => {
    expect((await verdict([older, encrypted(newer)])).status).toBe('ok');
    const half = { ...newer, artifacts: encrypted(newer).artifacts.map((a, i) => (i === 1 ? { ...a, encryption: null } : a)) };
    expect((await verdict([half])).status).toBe('failing');
  });

  it('is ok with no backup yet, and for a target that need not be encrypted', async () => {
    expect((await verdict([])).evidence).toBe('no backup yet');
    expect((await verdict([newer], () => false)).status).toBe('ok');
  });
});
