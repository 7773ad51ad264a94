import type { Readable } from 'node:stream';

/**
 * Keeps the head and the tail of a child's output (stderr, a TOC listing), bounded: the first error line (the cause) is near the head,
 * the last lines near the tail; a chatty tool can never make the bot's memory grow.
 */
export interface OutputTail {
  text(): string;
}

export function collectOutput(stream: Readable | null | undefined, limit = 16 * 1024): OutputTail {
  const half = Math.floor(limit / 2);
  let head = '';
  let tail = '';
  let dropped = 0;
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    if (head.length < half) {
      const take = chunk.slice(0, half - head.length);
      head += take;
      chunk = chunk.slice(take.length);
    }
    tail += chunk;
    if (tail.length > half) {
      dropped += tail.length - half;
      tail = tail.slice(-half);
    }
  });
  return {
    text: () => (dropped > 0 ? `${head}\n[… ${dropped} characters left out …]\n${tail}` : head + tail),
  };
}
