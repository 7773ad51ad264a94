import type { Writable } from 'node:stream';
import { execa } from 'execa';
import { bareEnv, type childOptions, closeWhenGone, yieldCpu } from '../child-pipes.ts';

/**
 * Two stages of the chains where coreutils cost more than the work: each is one perl process (Debian's perl-base, an
 * essential package) reading and writing up to 1 MiB at a time, where coreutils' tee moves 8 KiB (its buffer). Without
 * perl, coreutils do the same work.
 *
 * - The tap: the last N bytes of a tool's raw output (a base backup's `backup_manifest`, the tar's last member), kept
 *   on the way to zstd without the raw bytes passing through Node; written to descriptor 3 at the end. Else `tee FIFO`
 *   and `tail -c N FIFO`. Measured on 650 MB of raw tar into `zstd -T0 -2` (2 cores): tee and tail cost 1.4–1.7 s
 *   over the bare pipe (1.7–1.9 s), perl 0.0–0.2 s; tee and tail move the whole stream twice more, through a second
 *   pipe. The bot's base backup run, both stages in perl (bench:base-phases): 3.38 s against 4.56 s with coreutils'
 *   stages, the floor 2.72 s.
 * - The file tee: the stored bytes into the file and on to the hasher (native-pipe.ts). Else `tee FILE`. On 310 MB
 *   of zstd output into `openssl dgst -sha256`: 0.68–0.80 s against 1.00–1.23 s (`cat > file`: 0.30–0.41 s).
 *
 * Both raise their pipes to 1 MiB where they are pipes (Linux F_SETPIPE_SZ = 1031; Node's are sockets, where it fails
 * and is ignored). Writes are retried until whole; a read or write error exits non-zero with one line on stderr
 * (`<path>: No space left on device`, as tee says it); a reader gone is a SIGPIPE, as for tee.
 */
export interface RawTail {
  bytes: number;
  /** perl's path (findPerl): the one-process tap. */
  perl?: string | undefined;
  /** Without perl: a named pipe the caller made, in a private directory, from tee to tail. */
  fifo?: string | undefined;
}

/**
 * Both stages, one program: stdin to stdout, and with a path (second argument) into that file first (already created,
 * private), and with N > 0 (first argument) the last N bytes to descriptor 3 once stdin ends.
 */
export const STAGE_PROGRAM = `use strict;
my ($n, $path) = @ARGV; my ($buf, $tail, $f, $t) = ('', '');
sub put { my ($h, $r, $what) = @_; for (my $o = 0; $o < $r;) { my $w = syswrite($h, $buf, $r - $o, $o); die "$what: $!\\n" unless defined $w; $o += $w; } }
if ($path ne '') { open($f, '>', $path) or die "$path: $!\\n"; binmode $f; }
if ($n > 0) { open($t, '>&=', 3) or die "descriptor 3: $!\\n"; binmode $t; }
binmode STDIN; binmode STDOUT;
fcntl(STDIN, 1031, 1048576); fcntl(STDOUT, 1031, 1048576);
for (;;) {
  my $r = sysread(STDIN, $buf, 1048576);
  die "read: $!\\n" unless defined $r;
  last if $r == 0;
  put($f, $r, $path) if $f;
  put(\\*STDOUT, $r, 'write');
  next unless $t;
  if ($r >= $n) { $tail = substr($buf, $r - $n); } else { $tail .= $buf; substr($tail, 0, length($tail) - $n, '') if length($tail) > $n; }
}
if ($f) { close($f) or die "$path: $!\\n"; }
close(STDOUT) or die "write: $!\\n";
if ($t) { print $t $tail or die "descriptor 3: $!\\n"; close($t) or die "descriptor 3: $!\\n"; }
`;

let perl: Promise<string | null> | undefined;

/** `perl` when it runs (asked once per process), else null: the stages fall back to coreutils. */
export function findPerl(): Promise<string | null> {
  perl ??= execa('perl', ['-e', 'use strict; exit 0'], { reject: false, stdin: 'ignore', timeout: 10_000 }).then((r) => (r.failed ? null : 'perl'));
  return perl;
}

/**
 * The tap's processes, its stdout into `into` (zstd's stdin): `tee` is the one the tool writes into (perl, or tee),
 * `tail` the coreutils reader of the named pipe (none with perl).
 */
export function spawnTap(t: RawTail, into: Writable, common: ReturnType<typeof childOptions>) {
  if (t.perl) {
    const tee = yieldCpu(
      execa(t.perl, ['-e', STAGE_PROGRAM, '--', String(t.bytes), ''], {
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
  // Its stderr kept for the failure's message (with buffer: false execa drains it unread); never its stdout, the data.
  const tee = yieldCpu(
    execa('tee', ['--', t.fifo], { ...common, ...bareEnv(), buffer: { stdout: false, stderr: true }, stdin: 'pipe', stdout: into, stderr: 'pipe' }),
  );
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

/** What the tap said on stderr: bytes from perl (the tap asks for buffers), text from tee, nothing when none was kept. */
export function tapStderr(tee: { stderr: unknown } | null): string {
  const e = tee?.stderr;
  return e instanceof Uint8Array ? Buffer.from(e).toString() : String(e ?? '');
}

/** The native chain's writer: the stored bytes into `path` (the writer's `.partial`) and on into `into` (the hasher). */
export function spawnFileTee(perlPath: string | null, path: string, into: Writable, common: ReturnType<typeof childOptions>) {
  // `--` before a path: neither perl nor tee takes it for an option.
  const [command, args] = perlPath ? [perlPath, ['-e', STAGE_PROGRAM, '--', '0', path]] : ['tee', ['--', path]];
  const tee = yieldCpu(execa(command, args, { ...common, ...bareEnv(), stdin: 'pipe', stdout: into, stderr: 'pipe' }));
  closeWhenGone(tee, into);
  return tee;
}
