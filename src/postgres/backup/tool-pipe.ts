import { counter } from '../stream-counter.ts';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { findNativeTools, runNative } from './native-pipe.ts';
import {
  chainFailure,
  parseZstdSummary,
  rawTailOf,
  reportWithRawEstimate,
  spawnChain,
  wasCanceled,
  type ToolPipeOptions,
  type ToolPipeResult,
} from './tool-chain.ts';

/**
 * `<pg tool> | zstd [| age] | sha256+count | destination`, streaming with back-pressure; nothing is buffered.
 *
 * By default the tool's stdout is handed to zstd as a file descriptor (zstd is spawned first and its stdin
 * pipe becomes the tool's stdout), so the raw dump never passes through Node; zstd's `-vv` summary gives
 * the raw byte count. `rawCounting: 'node'` routes the raw bytes through a counting Transform instead.
 *
 * Encryption comes after compression and before the hash, so sha256 and bytes describe the file as stored. The
 * age CLI (`encryptCommand`) is chained the same way, by file descriptor (zstd's stdout is age's stdin): Node
 * only reads age's output, exactly as much work as for an unencrypted backup. Passing the compressed stream
 * through Node into a child and back cost about 14 % of a backup's time; in-process encryption (`encrypt`, the
 * age-encryption library) about 35 % (src/crypto/age-cli.ts).
 *
 * A local destination without in-process encryption or node counting keeps Node out of the data path entirely:
 * tee writes the file and a hasher reads the same bytes (native-pipe.ts). Both readers share the chain (tool-chain.ts).
 */
export async function runToolIntoZstd(o: ToolPipeOptions): Promise<ToolPipeResult> {
  const mode = o.rawCounting ?? 'zstd';
  const hasher = o.destinationPath && !o.encrypt && mode === 'zstd' ? (o.hasher ?? (await findNativeTools())) : null;
  if (o.destinationPath && hasher) return runNative(o, o.destinationPath, hasher);
  return runThroughNode(o, mode === 'node');
}

/** Node reads the chain's output: [in-process encryption →] hash and count → destination. */
async function runThroughNode(o: ToolPipeOptions, rawThroughNode: boolean): Promise<ToolPipeResult> {
  const chain = spawnChain(o, undefined, rawThroughNode);
  const hash = createHash('sha256');
  let bytes = 0;
  let rawSeen = 0;
  let lastReport = 0;
  let settled = false;
  const report = () => {
    const now = Date.now();
    if (!o.onProgress || now - lastReport < 1_000) return;
    lastReport = now;
    if (rawThroughNode) return o.onProgress({ bytes, rawBytes: rawSeen });
    reportWithRawEstimate(
      o,
      chain.zstd.pid,
      () => bytes,
      () => settled,
    );
  };
  // A stream that fails stops the whole chain: the processes would otherwise wait on pipes nobody reads.
  const stopChain = (err: unknown) => {
    chain.kill();
    throw err;
  };
  // pipeline() destroys every stage with the first error, so each stage emits it: the first emitter is the cause.
  let encryptFailedFirst: boolean | undefined;
  o.encrypt?.once('error', () => (encryptFailedFirst ??= true));
  o.destination.once('error', () => (encryptFailedFirst ??= false));
  // zstd's stdout is a pipe whenever there is no age to hand it to.
  const compressed = (chain.age ? chain.age.stdout : chain.zstd.stdout) as Readable;
  const countStored = counter((n) => {
    bytes += n;
    report();
  }, hash);
  const output = pipeline([compressed, ...(o.encrypt ? [o.encrypt] : []), countStored, o.destination]).catch(stopChain);
  const raw = rawThroughNode ? chain.tool.stdout : null;
  const input = raw
    ? pipeline(
        raw,
        counter((n) => (rawSeen += n)),
        chain.zstd.stdin,
      ).catch(stopChain)
    : Promise.resolve();
  const [r, [outRes, inRes]] = await Promise.all([chain.settle(), Promise.allSettled([output, input])]);
  settled = true;
  if (wasCanceled(o.signal, [r.tool, r.zstd, r.age])) throw chain.fail('canceled', 'canceled by request', o.signal?.reason);
  if (outRes.status === 'rejected' && encryptFailedFirst)
    throw chain.fail('encryptor', `encrypting the artifact failed: ${String(outRes.reason)}`, outRes.reason);
  // A full disk shows up here first; zstd and the tool then die of a broken pipe, which is not the cause.
  if (outRes.status === 'rejected') throw chain.fail('write', `writing the artifact failed: ${String(outRes.reason)}`, outRes.reason);
  const failed = chainFailure(o, chain, r, true);
  if (failed) throw failed;
  if (inRes.status === 'rejected') throw chain.fail('compressor', `feeding zstd failed: ${String(inRes.reason)}`, inRes.reason);
  const rawBytes = rawThroughNode ? rawSeen : parseZstdSummary(chain.zstdStderr.text());
  return { rawBytes, bytes, sha256: hash.digest('hex'), toolStderr: chain.toolStderr.text(), ...rawTailOf(r, o) };
}
