import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { BotError } from '../../errors.ts';
import { PartialWalStore } from './partial-store.ts';
import { clusterTool } from './scratch-cluster.ts';
import { LocalWalStore } from './wal-store.ts';

type Need = { path: string; mode: 'enter' | 'read' | 'run' };

const TEST_FLAG = { enter: '-x', read: '-r', run: '-x' } as const;
const ACCESS = { enter: constants.X_OK, read: constants.R_OK, run: constants.X_OK } as const;

/**
 * What the recovering server's user needs, since it runs restore_command: to enter the WAL archive's directories, to
 * read the first segment the recovery asks for (the base backup's start: its index entry and its file), to read the
 * identity file, and to run node on the bot's entry point. Any of them denied, PostgreSQL hears "not archived" from
 * the shell's own check or a failed wal-fetch, and says only "invalid checkpoint record", with a hint (remove
 * backup_label) that corrupts the cluster. So checked before anything is laid out. A segment archived later and not
 * readable (a worker still archiving beside the recovery) fails later, in wal-fetch's own words in the server's log.
 */
export async function serverAccessNeeds(o: {
  root: string;
  target: string;
  firstSegment: string;
  identityFile?: string | undefined;
  node: string;
  bin: string;
}): Promise<Need[]> {
  const whole = new LocalWalStore(o.root, o.target);
  const partial = new PartialWalStore(o.root, o.target);
  const needs: Need[] = [{ path: whole.dir, mode: 'enter' }];
  const first = await whole.entry(o.firstSegment).catch(() => null);
  if (first) needs.push({ path: join(whole.dir, `${first.name}.json`), mode: 'read' }, { path: join(whole.dir, first.file), mode: 'read' });
  if (await stat(partial.dir).catch(() => null)) needs.push({ path: partial.dir, mode: 'enter' });
  if (o.identityFile) needs.push({ path: o.identityFile, mode: 'read' });
  needs.push({ path: o.node, mode: 'run' }, { path: o.bin, mode: 'read' });
  return needs;
}

/**
 * Each need checked as `user` in one `runuser … sh` (root) — a fixed script, the paths its arguments, never part of
 * it — or with access() when we are that user; null when neither. One process for all: a runuser per path cost
 * restore-pitr about half a second on 2 cores, ten of them one after the other.
 */
async function checkAll(user: string, needs: Need[]): Promise<boolean[] | null> {
  if (needs.length === 0) return [];
  if (process.getuid?.() === 0) {
    const script = 'while [ $# -gt 1 ]; do if test "$1" "$2"; then echo y; else echo n; fi; shift 2; done';
    const args = needs.flatMap((n) => [TEST_FLAG[n.mode], n.path]);
    const r = await execa('runuser', ['-u', user, '--', 'sh', '-c', script, 'sh', ...args], { reject: false, stdin: 'ignore' });
    const said = String(r.stdout).split('\n').filter(Boolean);
    if (r.failed || said.length !== needs.length)
      throw new Error(`runuser -u ${user} could not check access: ${String(r.stderr).trim() || `exit code ${r.exitCode}`}`);
    return said.map((l) => l === 'y');
  }
  if (userInfo().username !== user) return null;
  return Promise.all(
    needs.map((n) =>
      access(n.path, ACCESS[n.mode]).then(
        () => true,
        () => false,
      ),
    ),
  );
}

/**
 * The needs `user` is denied, each as "path (mode 0750, owner 0:0)"; null when they cannot be checked from here
 * (neither root, who checks as that user with runuser, nor that user).
 */
export async function deniedTo(user: string, needs: Need[]): Promise<string[] | null> {
  const allowed = await checkAll(user, needs);
  if (!allowed) return null;
  const refused = needs.filter((_, i) => !allowed[i]);
  // A directory above one that may not be entered is what to fix: named, once, instead of everything below it.
  const above = (n: Need) =>
    n.path
      .split('/')
      .filter(Boolean)
      .slice(0, -1)
      .map((_, i, parts) => `/${parts.slice(0, i + 1).join('/')}`);
  const dirs = [...new Set(refused.flatMap(above))];
  const enter =
    (await checkAll(
      user,
      dirs.map((path): Need => ({ path, mode: 'enter' })),
    )) ?? [];
  const denied: string[] = [];
  const said = new Set<string>();
  for (const n of refused) {
    const up = above(n).find((d) => enter[dirs.indexOf(d)] === false);
    const blocked: Need = up ? { path: up, mode: 'enter' } : n;
    if (said.has(blocked.path)) continue;
    said.add(blocked.path);
    const s = await stat(blocked.path).catch(() => null);
    const how = blocked.mode === 'enter' ? 'to enter' : `to ${blocked.mode}`;
    denied.push(`${blocked.path} (${how}${s ? `; mode ${(s.mode & 0o7777).toString(8).padStart(4, '0')}, owner ${s.uid}:${s.gid}` : ''})`);
  }
  return denied;
}

/** Whether a system user of that name exists. */
export async function userExists(user: string): Promise<boolean> {
  return (await execa('id', ['-u', user], { reject: false, stdin: 'ignore' })).exitCode === 0;
}

/**
 * The directories above the data directory that are there already, each to be entered by the server's user: the data
 * directory itself is chowned to it (the printed command), and those restore-pitr makes are made 0755 (lay-out.ts).
 */
async function dataDirNeeds(dataDir: string): Promise<Need[]> {
  const needs: Need[] = [];
  for (let d = dirname(resolve(dataDir)); ; d = dirname(d)) {
    if (await stat(d).catch(() => null)) needs.unshift({ path: d, mode: 'enter' });
    if (d === dirname(d)) return needs;
  }
}

/**
 * Refuses, before anything is laid out, when `user` is root (PostgreSQL will not run as root), may not reach the data
 * directory, or may not read what restore_command needs (server-access.ts); returns a note when that cannot be
 * checked from here, else null.
 */
export async function checkServerAccess(user: string, o: Parameters<typeof serverAccessNeeds>[0] & { dataDir: string }): Promise<string | null> {
  const uid = (await execa('id', ['-u', user], { reject: false, stdin: 'ignore' })).stdout.trim();
  if (!/^\d+$/.test(uid))
    throw new BotError(
      'bad_request',
      `There is no user ${user} on this host to run the recovered server: name the one who will with --run-as=USER. Nothing was laid out.`,
    );
  if (uid === '0')
    throw new BotError(
      'bad_request',
      `The recovered server cannot run as ${user}: PostgreSQL refuses to run as root ("pg_ctl: cannot be run as root"). Name the user who will run it with --run-as=USER (usually postgres). Nothing was laid out.`,
    );
  const above = await deniedTo(user, await dataDirNeeds(o.dataDir));
  if (above?.length)
    throw new BotError(
      'bad_request',
      `The recovered server will run as ${user} (--run-as), who may not reach --data-dir=${resolve(o.dataDir)}: ${above.join('; ')}; PostgreSQL would not start there. Choose a --data-dir ${user} can reach (under its home, e.g. /var/lib/postgresql), or let it through (\`setfacl -m u:${user}:x DIR\`). Nothing was laid out.`,
    );
  const denied = await deniedTo(user, await serverAccessNeeds(o));
  if (denied === null)
    return `note: whether ${user} may reach the data directory, read the archive and the identity file was not checked (run restore-pitr as root or as ${user}).`;
  if (denied.length === 0) return null;
  throw new BotError(
    'bad_request',
    `The recovered server will run as ${user} (--run-as), who may not read what its restore_command needs: ${denied.join('; ')}. Give ${user} access (setfacl, Debian package acl: a directory above the archive needs only to be entered, \`setfacl -m u:${user}:x DIR\`; the archive itself \`setfacl -R -m u:${user}:rX DIR\` and \`setfacl -R -d -m u:${user}:rX DIR\` so WAL archived later is readable too; the identity file: a copy ${user} may read, named by BACKUP_ENCRYPTION_IDENTITY_FILE), or name the user who will run it with --run-as. Nothing was laid out.`,
  );
}

/** pg_ctl of the laid-out cluster's major by its full path (Debian keeps it off PATH), or plain pg_ctl. */
export async function pgCtlPath(dataDir: string): Promise<string> {
  return (await clusterTool(resolve(dataDir), 'pg_ctl')) ?? 'pg_ctl';
}

/**
 * WAL restore-pitr fetched from S3 (run as root) is root's, 0640 in 0750 directories: the server's user could read
 * none of it. Its group becomes that user's and may read and enter, so the recovery it was fetched for can run;
 * owners and other bits stay. Nothing happens unless run as root.
 */
export async function shareFetchedWal(root: string, target: string, user: string): Promise<void> {
  if (process.getuid?.() !== 0 || !(await userExists(user))) return;
  const dir = join(root, target, '_wal');
  if (!(await stat(dir).catch(() => null))) return;
  const group = (await execa('id', ['-gn', user])).stdout.trim();
  await execa('chgrp', ['-R', '--', group, dir]);
  await execa('chmod', ['-R', 'g+rX', '--', dir]);
  // The two directories above it (the bot made them) must let that group through too.
  for (const up of [join(root, target), root]) {
    await execa('chgrp', ['--', group, up], { reject: false });
    await execa('chmod', ['g+x', '--', up], { reject: false });
  }
}
