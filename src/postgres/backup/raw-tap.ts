import type { Writable } from 'node:stream';
import { execa } from 'execa';
import { bareEnv, type childOptions, closeWhenGone, yieldCpu } from '../child-pipes.ts';

/**
 * The tap: the last N bytes of a tool's raw output (a base backup's `backup_manifest`, the tar's last member), kept on
 * the way to zstd without the raw bytes passing through Node.
 *
 * With perl (Debian's perl-base, an essential package): one process that hands its input on in reads of up to 1 MiB,
 * keeps the last N bytes and writes them to descriptor 3 at the end. Without it, coreutils: `tee FIFO` and
 * `tail -c N FIFO`. Measured on 650 MB of raw tar into `zstd -T0 -2` (2 cores): tee and tail cost 1.4–1.7 s over
 * the bare pipe (1.7–1.9 s), perl 0.0–0.2 s. tee and tail move the whole stream twice more, in 8 KiB reads (coreutils'
 * buffer), through a second pipe: about 250,000 more system calls and a second copy of every byte.
 */
export interface RawTail {
  bytes: number;
  /** perl's path (findPerl): the one-process tap. */
  perl?: string | undefined;
  /** Without perl: a named pipe the caller made, in a private directory, from tee to tail. */
  fifo?: string | undefined;
}

/**
 * stdin to stdout, the last N bytes to descriptor 3 once stdin ends. Writes are retried until whole; a read or write
 * error exits non-zero with a line on stderr; a reader gone (zstd died) is a SIGPIPE, as for tee. The pipe's size is
 * raised to 1 MiB where the descriptors are pipes (Linux F_SETPIPE_SZ = 1031; Node's are sockets, where it fails
 * and is ignored).
 */
export const TAP_PROGRAM = `use strict;
my $n = $ARGV[0]; my ($buf, $tail) = ('', '');
open(my $t, '>&=', 3) or die "descriptor 3: $!\\n";
binmode STDIN; binmode STDOUT; binmode $t;
fcntl(STDIN, 1031, 1048576); fcntl(STDOUT, 1031, 1048576);
for (;;) {
  my $r = sysread(STDIN, $buf, 1048576);
  die "read: $!\\n" unless defined $r;
  last if $r == 0;
  for (my $o = 0; $o < $r;) { my $w = syswrite(STDOUT, $buf, $r - $o, $o); die "write: $!\\n" unless defined $w; $o += $w; }
  if ($r >= $n) { $tail = substr($buf, $r - $n); } else { $tail .= $buf; $tail = substr($tail, length($tail) - $n) if length($tail) > $n; }
}
close(STDOUT) or die "write: $!\\n";
print $t $tail or die "descriptor 3: $!\\n";
close($t) or die "descriptor 3: $!\\n";
`;

let perl: Promise<string | null> | undefined;

/** `perl` when it runs (asked once per process), else null: the tap falls back to tee and tail. */
export function findPerl(): Promise<string | null> {
  perl ??= execa('perl', ['-e', 'exit 0'], { reject: false, stdin: 'ignore', timeout: 10_000 }).then((r) => (r.failed ? null : 'perl'));
  return perl;
}

/**
 * The tap's processes, its stdout into `into` (zstd's stdin): `tee` is the one the tool writes into (perl, or tee),
 * `tail` the coreutils reader of the named pipe (none with perl).
 */
export function spawnTap(t: RawTail, into: Writable, common: ReturnType<typeof childOptions>) {
  if (t.perl) {
    const tee = yieldCpu(
      execa(t.perl, ['-e', TAP_PROGRAM, String(t.bytes)], {
        ...common,
        ...bareEnv(),
        stdio: ['pipe', into, 'pipe', 'pipe'],
        buffer: true,
        encoding: 'buffer',
        stripFinalNewline: false,
      }),
    );
    closeWhenGone(tee, into);
    return { tee, tail: undefined };
  }
  if (!t.fifo) throw new Error('the raw tap needs perl or a named pipe');
  const tail = yieldCpu(
    execa('tail', ['-c', String(t.bytes), '--', t.fifo], {
      ...common,
      ...bareEnv(),
      buffer: true,
      stripFinalNewline: false,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      encoding: 'buffer',
    }),
  );
  const tee = yieldCpu(execa('tee', ['--', t.fifo], { ...common, ...bareEnv(), stdin: 'pipe', stdout: into, stderr: 'pipe' }));
  closeWhenGone(tee, into);
  // A tee that failed may never have opened the named pipe: tail would wait on it for ever.
  tee.once('exit', (code) => code !== 0 && tail.kill('SIGTERM'));
  tee.once('error', () => tail.kill('SIGTERM'));
  return { tee, tail };
}

/** The tap's bytes from its processes' results: perl's descriptor 3, or tail's stdout. */
export function tapBytes(tee: { stdio: unknown[] } | null, tail: { stdout: unknown } | null, perlTap: boolean): Buffer | undefined {
  if (perlTap) return tee ? Buffer.from((tee.stdio[3] as Uint8Array | undefined) ?? new Uint8Array()) : undefined;
  return tail ? Buffer.from((tail.stdout as Uint8Array | undefined) ?? new Uint8Array()) : undefined;
}

/** What perl said on stderr (its output is bytes: the tap asks for buffers). */
export function tapStderr(tee: { stderr: unknown } | null): string {
  const e = tee?.stderr;
  return e instanceof Uint8Array ? Buffer.from(e).toString() : String(e ?? '');
}
