import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
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
});
