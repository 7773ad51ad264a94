/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests only: every line must be a HELP,
 * a TYPE, a sample of a family declared before it, or blank. Stands in until a parser package is approved.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const SAMPLE = new RegExp(`^(${NAME})(\\{(?:${LABEL}(?:,${LABEL})*)?,?\\})? ([0-9.eE+-]+|NaN|Nan|[+-]Inf)( -?[0-9]+)?$`);
const HELP = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
// prom-client 15 writes NaN as "Nan" (lib/util.js); Prometheus reads values with Go's ParseFloat, which ignores
// case for NaN, so the server accepts it. Accepting exactly that spelling keeps the check strict otherwise.
const ONE_LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;

function familyOf(sample: string, families: Map<string, Family>): Family | undefined {
  const exact = families.get(sample);
  if (exact) return exact;
  // Histograms and summaries expose name_bucket / name_sum / name_count under the family's TYPE line.
  const m = /^(.*)_(bucket|sum|count)$/.exec(sample);
  const family = m?.[1] ? families.get(m[1]) : undefined;
  return family && (family.type === 'histogram' || family.type === 'summary') ? family : undefined;
}

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const help = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === '') return;
    const h = HELP.exec(line);
    if (h?.[1] !== undefined) {
      help.set(h[1], h[2] ?? '');
      return;
    }
    const t = TYPE.exec(line);
    if (t?.[1] !== undefined) {
      if (families.has(t[1])) throw new Error(`${where}: second TYPE for ${t[1]}`);
      families.set(t[1], { name: t[1], type: t[2] as Family['type'], help: help.get(t[1]) ?? '', samples: [] });
      return;
    }
    if (line.startsWith('#')) throw new Error(`${where}: unknown comment`);
    const s = SAMPLE.exec(line);
    if (!s?.[1] || s[3] === undefined) throw new Error(`${where}: not a valid sample line`);
    const family = familyOf(s[1], families);
    if (!family) throw new Error(`${where}: sample before its TYPE line`);
    const labels: Record<string, string> = {};
    for (const m of (s[2] ?? '').matchAll(ONE_LABEL)) {
      if (m[1] === undefined || m[2] === undefined) continue;
      if (m[1] in labels) throw new Error(`${where}: label ${m[1]} twice`);
      labels[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const value = s[3] === '+Inf' ? Number.POSITIVE_INFINITY : s[3] === '-Inf' ? Number.NEGATIVE_INFINITY : Number(s[3]);
    if (s[3] !== 'NaN' && s[3] !== 'Nan' && Number.isNaN(value)) throw new Error(`${where}: value is not a number`);
    family.samples.push({ name: s[1], labels, value });
  });
  for (const family of families.values()) {
    if (!family.help) throw new Error(`${family.name} has no HELP line`);
  }
  return families;
}

/** The value of the one sample of `name` whose labels include `labels`; throws when there is none or several. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const matches = [...families.values()]
    .flatMap((f) => f.samples)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (matches.length !== 1 || !matches[0]) throw new Error(`${matches.length} samples of ${name}${JSON.stringify(labels)}`);
  return matches[0].value;
}
