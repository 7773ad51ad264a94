import { mkdir, mkdtemp, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog, type AuditEntry } from '../src/audit.ts';
import { createLogger } from '../src/logger.ts';

const entry = (n: number): Omit<AuditEntry, 'at'> => ({
  kind: 'command',
  userId: `U0ENG${n}`,
  userName: `eng${n}`,
  what: '/backup',
  args: 'now',
  decision: 'allowed',
  role: 'operator',
  jobId: null,
  result: null,
});

describe('createAuditLog', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-audit-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('writes fifty concurrent appends as whole lines, in the order they were made, each resolved once written', async () => {
    const audit = createAuditLog(dir, createLogger({ level: 'silent' }));
    await Promise.all(Array.from({ length: 50 }, (_, i) => audit.append(entry(i))));
    const lines = (await readFile(join(dir, '_audit', 'audit.jsonl'), 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as AuditEntry).userId)).toEqual(Array.from({ length: 50 }, (_, i) => `U0ENG${i}`));
  });

  it('flushes appends nobody awaited, and the tail includes them', async () => {
    const audit = createAuditLog(dir, createLogger({ level: 'silent' }));
    for (let i = 0; i < 3; i++) void audit.append(entry(i));
    expect((await audit.tail(10)).map((e) => e.userId)).toEqual(['U0ENG0', 'U0ENG1', 'U0ENG2']);
    void audit.append(entry(3));
    await audit.flush();
    expect((await readFile(join(dir, '_audit', 'audit.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(4);
  });

  it('rejects the appends of a failed write, and writes the next ones', async () => {
    const audit = createAuditLog(dir, createLogger({ level: 'silent' }));
    // A directory where the file should be: the write fails, even for root.
    await mkdir(join(dir, '_audit', 'audit.jsonl'), { recursive: true });
    const results = await Promise.allSettled([audit.append(entry(0)), audit.append(entry(1))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await rmdir(join(dir, '_audit', 'audit.jsonl'));
    await audit.append(entry(2));
    expect((await audit.tail(10)).map((e) => e.userId)).toEqual(['U0ENG2']);
  });
});
