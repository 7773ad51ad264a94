import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { divergedSentence, forkedBeforeSpool, NO_STREAM, setAsideDiverged } from '../../../src/postgres/pitr/diverged.ts';
import { SEGMENT_BYTES } from '../../../src/postgres/pitr/lsn.ts';

/** pg_receivewal's stderr, as PostgreSQL 15 refuses a start past the promoted server's fork. */
const SAID =
  'pg_receivewal: error: could not send replication command "START_REPLICATION": ERROR:  requested starting point 0/6000000 on timeline 1 is not in this server\'s history\nDETAIL:  This server\'s history forked from timeline 1 at 0/5025AA0.\npg_receivewal: error: disconnected\n';

describe('a spool past the promoted server’s fork', () => {
  let spool: string;
  beforeEach(async () => {
    spool = await mkdtemp(join(tmpdir(), 'pgbb-diverged-'));
  });
  afterEach(() => rm(spool, { recursive: true, force: true }));
  const never = async (): Promise<number> => {
    throw new Error('not asked for a fork within a segment');
  };

  it('reads the refusal', () => {
    expect(forkedBeforeSpool(SAID)).toEqual({ asked: '0/6000000', timeline: 1, at: '0/5025AA0' });
    expect(forkedBeforeSpool('pg_receivewal: error: could not connect to server')).toBeNull();
  });

  it('sets the old timeline’s partial segment aside and starts again at the fork’s segment on the old timeline', async () => {
    await writeFile(join(spool, '000000010000000000000006.partial'), 'old primary');
    const f = forkedBeforeSpool(SAID) as NonNullable<ReturnType<typeof forkedBeforeSpool>>;
    const r = await setAsideDiverged(spool, f, never);
    expect(r).toEqual({ moved: ['000000010000000000000006.partial'], waiting: [] });
    expect((await readdir(spool)).sort()).toEqual(['.diverged', '000000010000000000000005.partial']);
    expect((await stat(join(spool, '000000010000000000000005.partial'))).size).toBe(SEGMENT_BYTES);
    expect(await readdir(join(spool, '.diverged'))).toEqual(['000000010000000000000006.partial']);
    expect(divergedSentence(f, r)).toBe(
      "the promoted server left timeline 1 at 0/5025AA0, before WAL the bot had received from the old primary (from 0/6000000 on: written there, never replicated); 000000010000000000000006.partial set aside in the spool's .diverged directory; streaming goes on along the new timeline from the fork",
    );
  });

  it('at a segment’s start, starts on the timeline that follows, at that segment', async () => {
    await writeFile(join(spool, '000000010000000000000006.partial'), 'old primary');
    const r = await setAsideDiverged(spool, { asked: '0/6000000', timeline: 1, at: '0/5000000' }, async () => 2);
    expect(r.moved).toEqual(['000000010000000000000006.partial']);
    expect((await readdir(spool)).sort()).toEqual(['.diverged', '000000020000000000000005.partial']);
  });

  it('while a whole segment of the old timeline from the fork’s on waits for the archiver, makes the start all the same', async () => {
    await writeFile(join(spool, '000000010000000000000005'), 'whole');
    await writeFile(join(spool, '000000010000000000000006.partial'), 'old primary');
    const f = forkedBeforeSpool(SAID) as NonNullable<ReturnType<typeof forkedBeforeSpool>>;
    const r = await setAsideDiverged(spool, f, never);
    expect(r).toEqual({ moved: ['000000010000000000000006.partial'], waiting: ['000000010000000000000005'] });
    // Once the archiver has taken the whole one, pg_receivewal finds the start: never an empty spool (review).
    expect((await readdir(spool)).sort()).toEqual(['.diverged', '000000010000000000000005', '000000010000000000000005.partial']);
    expect(divergedSentence(f, r)).toContain('once the archiver has stored 000000010000000000000005, streaming goes on along the new timeline');
  });

  it('at a segment’s start, the old timeline’s file of that segment is the old primary’s alone: set aside too', async () => {
    await writeFile(join(spool, '000000010000000000000005.partial'), 'old primary');
    const r = await setAsideDiverged(spool, { asked: '0/5000000', timeline: 1, at: '0/5000000' }, async () => 2);
    expect(r.moved).toEqual(['000000010000000000000005.partial']);
    expect((await readdir(spool)).sort()).toEqual(['.diverged', '000000020000000000000005.partial']);
  });

  it('moves nothing when the next timeline cannot be asked: the spool stays as it was', async () => {
    await writeFile(join(spool, '000000010000000000000006.partial'), 'old primary');
    await expect(
      setAsideDiverged(spool, { asked: '0/6000000', timeline: 1, at: '0/5000000' }, async () => {
        throw new Error('the server is gone');
      }),
    ).rejects.toThrow('the server is gone');
    expect(await readdir(spool)).toEqual(['000000010000000000000006.partial']);
  });

  it('says the refusal that carries no message apart from others', () => {
    expect(NO_STREAM.test('pg_receivewal: error: could not send replication command "START_REPLICATION": \npg_receivewal: error: disconnected\n')).toBe(true);
    expect(NO_STREAM.test(SAID)).toBe(false);
  });
});
