import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { superviseReceiver, type ReceiverState } from '../../../src/postgres/pitr/receiver.ts';
import { streamProblem } from '../../../src/postgres/pitr/stream-problems.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';
import { silentLog, withClient } from '../../support/postgres-helpers.ts';

describe('why a server cannot stream, in one sentence that says what to change', () => {
  it('reads pg_receivewal’s own words', () => {
    expect(
      streamProblem(
        'pg_receivewal: error: connection to server at "10.0.0.5", port 5432 failed: FATAL:  no pg_hba.conf entry for replication connection from host "10.0.0.9", user "replicator", no encryption',
      ),
    ).toBe(
      "the server's pg_hba.conf has no replication line for replicator from 10.0.0.9: add `host replication replicator 10.0.0.9/32 scram-sha-256` and reload",
    );
    expect(streamProblem('FATAL:  must be superuser or replication role to start walsender')).toMatch(/^the role has no REPLICATION attribute/);
    expect(streamProblem('ERROR:  replication slot can only be used if wal_level >= replica')).toBe(
      'wal_level is minimal on the server: set `wal_level = replica` and restart it',
    );
    expect(streamProblem('ERROR:  all replication slots are in use')).toMatch(/raise `max_replication_slots`/);
    expect(streamProblem('FATAL:  number of requested standby connections exceeds max_wal_senders (currently 0)')).toMatch(/raise `max_wal_senders`/);
    expect(streamProblem('ERROR:  replication slot "pgbb_shop" is active for PID 4242')).toBe(
      'slot pgbb_shop is in use by another receiver (PID 4242 on the server): another worker streams this target',
    );
    expect(
      streamProblem(
        'pg_receivewal: error: unexpected termination of replication stream: ERROR:  requested WAL segment 000000010000000000000024 has already been removed',
      ),
    ).toMatch(
      /^the server no longer has WAL segment 000000010000000000000024, which the archive needs next: .* everything after its last segment is a gap\. The receiver sets its spool's partial segment aside and, if the slot still points there, drops the slot.* take a base backup at once$/,
    );
    expect(streamProblem('something nobody foresaw')).toBeNull();
  });

  describe('on a real server, with a role that may log in but not replicate', () => {
    const role = `pgbb_norepl_${randomBytes(4).toString('hex')}`;
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'pgbb-norepl-'));
      await withClient(inject('pgUrl'), (c) => c.query(`CREATE ROLE ${role} LOGIN NOREPLICATION`));
    });
    afterAll(async () => {
      await withClient(inject('pgUrl'), (c) => c.query(`DROP ROLE IF EXISTS ${role}`));
      await rm(dir, { recursive: true, force: true });
    });

    it('keeps the receiver down and says the role lacks REPLICATION', async () => {
      const tools = await findPgTools({ serverMajor: 15 });
      const pgReceivewal = (await findPgProgram('pg_receivewal', tools.pgDump, tools.major)) as string;
      const url = new URL(inject('pgUrl'));
      url.username = role;
      const states: ReceiverState[] = [];
      const r = superviseReceiver({
        pgReceivewal,
        url: url.toString(),
        slot: `pgbb_norepl_${randomBytes(3).toString('hex')}`,
        spool: join(dir, 'spool'),
        log: silentLog,
        onState: (s) => states.push(s),
        backoff: { minMs: 50, maxMs: 100 },
      });
      try {
        for (let i = 0; i < 200 && !states.some((s) => s.error); i++) await new Promise((res) => setTimeout(res, 50));
        expect(states.some((s) => s.up)).toBe(false);
        expect(states.find((s) => s.error)?.error).toMatch(/^cannot stream: the role has no REPLICATION attribute: `ALTER ROLE … REPLICATION`/);
      } finally {
        await r.stop();
      }
    });
  });

  describe('a pg_receivewal that dies at once on every start', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'pgbb-flap-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('stays down since its first failure (QA: "down since" reset on every retry, so the grace never ran out and nothing paged)', async () => {
      const tools = await findPgTools({ serverMajor: 15 });
      const pgReceivewal = (await findPgProgram('pg_receivewal', tools.pgDump, tools.major)) as string;
      // A partial segment of a timeline the server never had: each start asks for it and is refused at once.
      const spool = join(dir, 'spool');
      await mkdir(spool, { recursive: true });
      const partial = join(spool, '000000070000000000000003.partial');
      await writeFile(partial, '');
      await truncate(partial, 16 * 1024 * 1024);
      const slot = `pgbb_flap_${randomBytes(3).toString('hex')}`;
      const states: ReceiverState[] = [];
      const r = superviseReceiver({
        pgReceivewal,
        url: inject('pgUrl'),
        slot,
        spool,
        log: silentLog,
        onState: (x) => states.push(x),
        backoff: { minMs: 50, maxMs: 100 },
      });
      try {
        for (let i = 0; i < 200 && states.filter((x) => !x.up).length < 4; i++) await new Promise((res) => setTimeout(res, 50));
        const downs = states.filter((x) => !x.up);
        expect(downs.length).toBeGreaterThanOrEqual(4);
        expect(new Set(downs.map((x) => x.since.getTime())).size).toBe(1);
        // Never reported up in between: a health run at that moment would resolve the page.
        expect(states.slice(states.indexOf(downs[0] as ReceiverState)).some((x) => x.up)).toBe(false);
        // Each restart is said as one, with why it had stopped: still down, the reason no longer taken for current.
        const restarted = downs.map((x) => x.error ?? '').filter((e) => e.startsWith('pg_receivewal started again'));
        expect(restarted.length).toBeGreaterThanOrEqual(1);
        expect(restarted[0]).toMatch(
          /^pg_receivewal started again at \d\d:\d\d:\d\d UTC \(it had stopped: pg_receivewal stopped: .+\); counted as up once it has run 10 s$/,
        );
      } finally {
        await r.stop();
        await withClient(inject('pgUrl'), (c) => c.query('SELECT pg_drop_replication_slot($1)', [slot])).catch(() => undefined);
      }
    });
  });
});
