import { BackupIdSchema } from '../storage/manifest.ts';

/** Words as people paste them into Slack or a terminal. */

/**
 * A word with Slack's code backticks around it (`shop-20261205T020000Z` copied from a message's source, or typed so)
 * or in quotes, unwrapped. An option's value keeps its double quotes: `--table="User"` is a quoted identifier.
 */
/**
 * Text as the person meant it, before it is split into words: Slack's curly quotes as straight ones, and a dash that
 * autocorrect made of `--` before an option (macOS turns `--into` into `—into`; QA: refused without a hint) as `--`.
 */
export function straightened(raw: string): string {
  const quotes = raw.replace(/[\u201C\u201D]/g, '"').replace(/[\u2018\u2019]/g, "'");
  // Outside double quotes only: a quoted name keeps its dashes (second reader).
  return quotes
    .split('"')
    .map((part, i) => (i % 2 === 0 ? part.replace(/(^|\s)[\u2013\u2014](?=[a-z])/gi, '$1--') : part))
    .join('"');
}

export function unwrapWord(word: string): string {
  const inner = /^(`+)([^`]+)\1$/.exec(word)?.[2] ?? word;
  if (inner.startsWith('--')) return inner.replace(/^(--[a-z-]+=)`([^`]+)`$/, '$1$2');
  return /^(["'])(.+)\1$/.exec(inner)?.[2] ?? inner;
}

/**
 * The backup id a word nearly is: its `T` or `Z` in lower case, the `Z` left off (the id typed from a
 * timestamp), or punctuation copied after it. Null when no such repair makes an id, or the word already is one.
 */
export function repairedBackupId(word: string): string | null {
  if (BackupIdSchema.safeParse(word).success) return null;
  // A sentence's full stop or comma copied with it (QA: `…Z.` was refused with no suggestion).
  const fixed = word
    .replace(/[.,;:!?)]+$/, '')
    .replace(/-(\d{8})[tT](\d{6})[zZ]?(-\d+)?$/, (_, d: string, t: string, n: string | undefined) => `-${d}T${t}Z${n ?? ''}`);
  return fixed !== word && BackupIdSchema.safeParse(fixed).success ? fixed : null;
}

/** " Did you mean `shop-20261205T020000Z`?" for a word that nearly is a backup id; '' otherwise. */
export const didYouMean = (word: string): string => {
  const id = repairedBackupId(word);
  return id ? ` Did you mean \`${id}\`?` : '';
};
