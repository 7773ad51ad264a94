import { describe, expect, it } from 'vitest';
import { parseBackupText } from '../../src/commands/backup-text.ts';
import { compareDefinitions, dataDrift, dataLines, previousBackup, restoreCommand, schemaDrift, schemaLines } from '../../src/drift/index.ts';
import { DEFAULT_THRESHOLDS, evaluateHealth } from '../../src/health/index.ts';
import { dataDriftCondition } from '../../src/health/drift-condition.ts';
import type { Definitions, TableDefinition } from '../../src/storage/index.ts';
import type { Manifest } from '../../src/storage/manifest.ts';
import { makeManifest } from '../fixtures/backups.ts';

const h = (c: string) => c.repeat(16);
const t0 = new Date('2026-12-01T02:00:00Z');
const DAY = 86_400_000;

function backup(day: number, tables: Record<string, number>, over: Partial<Manifest> = {}): Manifest {
  const m = makeManifest({ startedAt: new Date(t0.getTime() + day * DAY), ...over });
  const list = Object.entries(tables).map(([name, rows]) => {
    const [schema = '', table = ''] = name.split('.');
    return { schema, table, rows };
  });
  return { ...m, verification: { ...m.verification, tables: list } };
}

function table(name: string, parts: Partial<TableDefinition> = {}): TableDefinition {
  const [schema = '', n = ''] = name.split('.');
  return { schema, name: n, hash: h('a'), columns: { id: h('1') }, indexes: {}, constraints: {}, policies: {}, triggers: {}, ...parts };
}

describe('dataDrift', () => {
  const before = backup(0, { 'shop.orders': 10_000, 'shop.items': 4_000, 'shop.slots': 240, 'shop.tiny': 3, 'shop.events': 100, 'shop.logs': 5_000 });

  it('names tables emptied, dropped, or that lost more than the share and the minimum, with what they had', () => {
    const after = backup(1, { 'shop.orders': 4_000, 'shop.items': 0, 'shop.tiny': 1, 'shop.events': 2_000, 'shop.logs': 4_400 });
    const d = dataDrift(before, after);
    if (!d.comparable) throw new Error(d.reason);
    expect(d.lost).toEqual([
      { schema: 'shop', table: 'orders', before: 10_000, after: 4_000, kind: 'shrunk' },
      { schema: 'shop', table: 'items', before: 4_000, after: 0, kind: 'emptied' },
      { schema: 'shop', table: 'slots', before: 240, after: null, kind: 'dropped' },
    ]);
    // shop.tiny lost 67 % but only 2 rows; shop.logs lost 600 rows but only 12 %.
    expect(d.grown).toEqual([{ schema: 'shop', table: 'events', before: 100, after: 2_000 }]);
  });

  it('takes its thresholds from the caller', () => {
    const after = backup(1, { 'shop.orders': 10_000, 'shop.items': 4_000, 'shop.slots': 240, 'shop.tiny': 1, 'shop.events': 100, 'shop.logs': 4_400 });
    const d = dataDrift(before, after, { lossRatio: 0.1, minRows: 1, growthFactor: 10 });
    expect(d.comparable && d.lost.map((l) => l.table)).toEqual(['logs', 'tiny']);
  });

  it('never compares counts taken in different scopes, nor of different databases', () => {
    const narrowed = backup(1, { 'shop.orders': 10 }, { scope: { schemas: ['shop'], excludeTables: ['shop.logs'] } });
    const d = dataDrift(before, narrowed);
    expect(d.comparable).toBe(false);
    expect(!d.comparable && d.reason).toMatch(/scopes differ.*without shop\.logs/);
    const other = backup(1, {}, { database: { ...before.database, name: 'other' } });
    expect(dataDrift(before, other).comparable).toBe(false);
  });

  it('gives each lost table the command that restores it from the earlier backup, quoting names that need it', () => {
    expect(restoreCommand('shop-20261201T020000Z', { schema: 'shop', table: 'order_items' })).toBe('/restore shop-20261201T020000Z --table=shop.order_items');
    expect(restoreCommand('shop-20261201T020000Z', { schema: 'public', table: 'Audit Log' })).toBe('/restore shop-20261201T020000Z --table=public."Audit Log"');
    const after = backup(1, { 'shop.orders': 10_000, 'shop.items': 0, 'shop.slots': 240, 'shop.tiny': 3, 'shop.events': 100, 'shop.logs': 5_000 });
    expect(dataLines(dataDrift(before, after), before.backupId)).toEqual([
      `shop.items: 4,000 rows → 0 (emptied) — \`/restore ${before.backupId} --table=shop.items\``,
    ]);
  });

  it('compares a backup with the newest one that started before it, of any class', () => {
    const a = backup(0, {});
    const b = backup(1, {}, { kind: 'scheduled', retentionClass: 'daily' });
    const c = backup(2, {});
    expect(previousBackup([c, a, b], c)?.backupId).toBe(b.backupId);
    expect(previousBackup([c, a, b], c, (m) => m.kind !== 'scheduled')?.backupId).toBe(a.backupId);
    expect(previousBackup([c, b], a)).toBeUndefined();
  });
});

describe('compareDefinitions', () => {
  const before: Definitions = {
    tables: [
      table('shop.customers', { columns: { id: h('1'), email: h('2'), address: h('3') }, policies: { own: h('4') }, indexes: { customers_pkey: h('5') } }),
      table('shop.slots', { constraints: { slots_pkey: h('6') }, indexes: { slots_pkey: h('7') } }),
    ],
    functions: { 'shop.touch()': h('8') },
    views: { 'shop.totals': h('9') },
  };

  it('names tables, columns, indexes, policies, functions and views added, dropped or changed; a dropped table once', () => {
    const after: Definitions = {
      tables: [
        table('shop.customers', { columns: { id: h('1'), email: h('b') }, policies: { own: h('c') }, indexes: { customers_pkey: h('5'), by_email: h('d') } }),
        table('shop.events'),
      ],
      functions: { 'shop.touch()': h('e'), 'shop.audit(integer)': h('f') },
      views: {},
    };
    expect(compareDefinitions(before, after).map((c) => `${c.kind} ${c.name} ${c.change}`)).toEqual([
      'table shop.events added',
      'table shop.slots dropped',
      'column shop.customers.address dropped',
      'column shop.customers.email changed',
      'index by_email on shop.customers added',
      'policy own on shop.customers changed',
      'function shop.audit(integer) added',
      'function shop.touch() changed',
      'view shop.totals dropped',
    ]);
    expect(compareDefinitions(before, before)).toEqual([]);
  });

  it('says why it cannot compare a backup made before definition summaries, and lists a screenful at most', () => {
    const old = backup(0, {});
    const now = { ...backup(1, {}), definitions: before };
    expect(schemaLines(schemaDrift(old, now, null))).toEqual([`not compared: ${old.backupId} predates definition summaries`]);
    const many: Definitions = {
      ...before,
      functions: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`shop.f${String(i).padStart(2, '0')}()`, h('1')])),
    };
    const lines = schemaLines(schemaDrift({ ...old, definitions: { ...before, functions: {} } }, { ...now, definitions: many }, null));
    expect(lines).toHaveLength(26);
    expect(lines.at(-1)).toBe('… and 15 more');
  });
});

describe('dataDriftCondition', () => {
  const a = backup(0, { 'shop.items': 7_500, 'shop.slots': 240 });
  const b = backup(1, { 'shop.items': 0 });

  it('fails with the tables, their counts, both backups and the restore commands; a warning, not paged', () => {
    const r = dataDriftCondition('shop', [b, a], DEFAULT_THRESHOLDS);
    expect(r).toMatchObject({ condition: 'data-drift', status: 'failing', severity: 'warning', unpaged: true, value: 2, acknowledge: b.backupId });
    expect(r.evidence).toBe(
      `2 tables lost rows between ${a.backupId} and ${b.backupId}: shop.items: 7,500 rows → 0 (emptied), restore with \`/restore ${a.backupId} --table=shop.items\`; shop.slots: 240 rows → gone (dropped), restore with \`/restore ${a.backupId} --table=shop.slots\``,
    );
  });

  it('pages with severity error when the config says so', () => {
    const r = dataDriftCondition('shop', [b, a], { ...DEFAULT_THRESHOLDS, driftPages: true });
    expect(r.severity).toBe('error');
    expect(r.unpaged).toBeUndefined();
  });

  it('clears when a newer backup no longer shows it, or when that backup’s drift is acknowledged', () => {
    const c = backup(2, { 'shop.items': 0 });
    expect(dataDriftCondition('shop', [c, b, a], DEFAULT_THRESHOLDS).status).toBe('ok');
    const acked = dataDriftCondition('shop', [b, a], DEFAULT_THRESHOLDS, { backupId: b.backupId, by: 'oncall', at: t0.toISOString() });
    expect(acked.status).toBe('ok');
    expect(acked.evidence).toMatch(/acknowledged by oncall/);
    // An acknowledgement of another backup does not hide this one.
    expect(dataDriftCondition('shop', [b, a], DEFAULT_THRESHOLDS, { backupId: a.backupId, by: 'x', at: t0.toISOString() }).status).toBe('failing');
  });

  it('names the tables that grew past the factor in the size evidence', () => {
    const small = [0, 1, 2].map((d) => backup(d, { 'shop.events': 100 }));
    const big = backup(3, { 'shop.events': 2_000 });
    const size = evaluateHealth({
      target: 'shop',
      now: new Date(t0.getTime() + 3 * DAY),
      backups: [...small, big],
      running: [],
      lastBackupRun: null,
      lastRestoreTest: null,
      disk: null,
    }).find((r) => r.condition === 'size');
    expect(size?.evidence).toContain(`grew since ${small[2]?.backupId}: shop.events: 100 rows → 2,000 (20×)`);
  });
});

describe('/backup diff', () => {
  it('takes two backup ids', () => {
    expect(parseBackupText('diff shop-20261201T020000Z shop-20261202T020000Z')).toEqual({
      verb: 'diff',
      a: 'shop-20261201T020000Z',
      b: 'shop-20261202T020000Z',
    });
    expect(parseBackupText('diff shop-20261201T020000Z')).toMatchObject({ verb: 'help', problem: expect.stringMatching(/two backup ids/) });
    expect(parseBackupText('diff shop nope')).toMatchObject({ verb: 'help', problem: expect.stringMatching(/not a backup id/) });
  });
});
