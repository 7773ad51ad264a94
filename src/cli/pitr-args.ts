export const RESTORE_PITR_USAGE =
  'usage: pg-backup-bot restore-pitr <target> --time="2026-12-03 14:30:00+01"|latest --data-dir=DIR [--action=promote|pause|shutdown] [--from=s3] [--run-as=USER] [--timeline=N]';

export interface RestorePitrArgs {
  target: string;
  time: string;
  dataDir: string;
  action: 'promote' | 'pause' | 'shutdown';
  from: 's3' | undefined;
  /** Who will run the recovered server (and so restore_command). */
  runAs: string;
  /** Recover along this timeline (an old primary's, after a failover: its commits the promoted server never got). */
  timeline?: number;
}

const FLAGS = ['time', 'data-dir', 'action', 'from', 'run-as', 'timeline'] as const;
const ACTIONS = ['promote', 'pause', 'shutdown'] as const;

/**
 * restore-pitr's arguments, or the sentence that says which one was not understood and why (QA: `--time "…"` with a
 * space, or the target after the flags, got the bare usage line).
 */
export function parseRestorePitrArgs(args: string[]): RestorePitrArgs | { problem: string } {
  const positional: string[] = [];
  const given = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const m = /^--([a-z-]+)(=(.*))?$/s.exec(a);
    const name = m?.[1] ?? '';
    if (!m || !(FLAGS as readonly string[]).includes(name)) return { problem: `"${a}" is not an option of restore-pitr.` };
    if (m[2] === undefined) {
      const next = args[i + 1];
      const what = next !== undefined && !next.startsWith('--') ? ` (given "${a} ${next}": write ${a}="${next}")` : '';
      return { problem: `${a} needs its value after "=", as in ${a}=…${what}.` };
    }
    if (given.has(name)) return { problem: `--${name} is given twice.` };
    given.set(name, m[3] ?? '');
  }
  const [target, ...extra] = positional;
  if (!target) return { problem: 'The target is missing: it comes first, before the options.' };
  if (extra.length)
    return { problem: `"${extra[0]}" was not understood: only the target goes without an option name (it comes first; the time is --time="…", with "=").` };
  if (args[0]?.startsWith('--')) return { problem: `The target (${target}) comes first, before the options: restore-pitr ${target} --time=… --data-dir=DIR.` };
  const time = given.get('time');
  const dataDir = given.get('data-dir');
  if (!time) return { problem: '--time is missing: the moment to recover to, with its UTC offset, or latest.' };
  if (!dataDir) return { problem: '--data-dir is missing: the empty (or new) directory to lay the cluster out in.' };
  const action = given.get('action') ?? 'promote';
  if (!(ACTIONS as readonly string[]).includes(action)) return { problem: `--action=${action} is not one of promote, pause, shutdown.` };
  const from = given.get('from');
  if (from !== undefined && from !== 's3') return { problem: `--from=${from}: the only other place restore-pitr reads from is s3.` };
  const runAs = given.get('run-as') ?? 'postgres';
  if (!/^[a-z_][a-z0-9_-]*$/i.test(runAs)) return { problem: `--run-as=${runAs} is not a user name.` };
  const tl = given.get('timeline');
  if (tl !== undefined && !/^[1-9]\d{0,9}$/.test(tl))
    return { problem: `--timeline=${tl} is not a timeline: a whole number from 1 on, as in 00000002.history (2).` };
  return { target, time, dataDir, action: action as RestorePitrArgs['action'], from, runAs, ...(tl ? { timeline: Number(tl) } : {}) };
}
