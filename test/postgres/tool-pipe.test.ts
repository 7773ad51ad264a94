import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseZstdSummary, runToolIntoZstd, ToolPipeError } from '../../src/postgres/tool-pipe.ts';

const sink = () =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });

describe('runToolIntoZstd', () => {
  it.each(['zstd', 'node'] as const)('fails instead of hanging when the tool cannot start (%s counting)', async (rawCounting) => {
    const err = await runToolIntoZstd({ command: '/nonexistent/pg_dumpall', args: [], env: {}, zstd: 'zstd', level: 1, destination: sink(), rawCounting }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ToolPipeError);
    expect((err as ToolPipeError).stage).toBe('tool');
    expect((err as ToolPipeError).exit).toMatch(/ENOENT/);
  });

  it.each(['zstd', 'node'] as const)('counts raw and stored bytes and hashes what it stored (%s counting)', async (rawCounting) => {
    const r = await runToolIntoZstd({ command: 'head', args: ['-c', '3000000', '/dev/zero'], env: {}, zstd: 'zstd', level: 3, destination: sink(), rawCounting });
    expect(r.rawBytes).toBe(3_000_000);
    expect(r.bytes).toBeGreaterThan(0);
    expect(r.bytes).toBeLessThan(10_000);
    expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('parseZstdSummary', () => {
  it('reads the raw size from zstd 1.5 and 1.4 summaries', () => {
    expect(parseZstdSummary('/*stdin*\\            : 12.02%   (314777504 B => 37841148 B, /*stdout*\\) \n')).toBe(314777504);
    expect(parseZstdSummary('/*stdin*\\            : 31.09%   (  10000 =>   3109 bytes, /*stdout*\\) \n')).toBe(10000);
    expect(parseZstdSummary('/*stdin*\\ : 12.02%   ( 300 MiB => 36.1 MiB, /*stdout*\\)')).toBeNull();
  });
});
