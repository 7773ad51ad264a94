import type { AuditLog } from '../audit.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { parseBackupText, type BackupRequest } from './backup-text.ts';
import type { CommandInput, Reply } from './backup-command.ts';
import { CANCEL_ACTION, CONFIRM_ACTION, whoMayRestoreInto } from './restore-command.ts';
import { DROP_REPLACED_ACTION, KEEP_REPLACED_ACTION } from './drop-replaced.ts';
import { parseRestoreTestText, parseRestoreText, REPLACED_NAME, type RestoreRequest, type RestoreTestRequest } from './restore-text.ts';
import { decide, roleOf, type GroupResolver, type Role } from './roles.ts';
import { CHECKLIST_ACTION_ID } from '../notifications/checklists.ts';
import { DRIFT_ACK_ACTION } from '../notifications/health-messages.ts';

type Handler = (input: CommandInput) => Promise<Reply>;
/** What a request needs: the role, how the refusal names it, and whether the text made sense (for the audit). */
type Need = { role: Role; what: string; valid: boolean };
type Click = { userId: string; userName: string; actionId: string; value: string };

/** The role each request needs, from the parsed request: reading is for viewers, running for operators. */
export function backupNeed(r: BackupRequest): Need {
  if (r.verb === 'now') return { role: 'operator', what: '`/backup now`', valid: true };
  if (r.verb === 'pre-migration') return { role: 'operator', what: '`/backup pre-migration`', valid: true };
  // Posts in the channel and runs checks (pg_restore --list): on-call work, like ticking a checklist's boxes.
  if (r.verb === 'checklist') return { role: 'operator', what: '`/backup checklist`', valid: true };
  if (r.verb === 'audit') return { role: 'admin', what: '`/backup audit`', valid: true };
  if (r.verb === 'help') return { role: 'viewer', what: '`/backup help`', valid: !r.problem };
  // Reading only: named one by one, so a verb added later must be given its role here (the compiler says so).
  if (r.verb === 'list' || r.verb === 'status' || r.verb === 'health' || r.verb === 'diff')
    return { role: 'viewer', what: `\`/backup ${r.verb}\``, valid: true };
  const unnamed: never = r;
  return { role: 'admin', what: `\`/backup ${(unnamed as BackupRequest).verb}\``, valid: false };
}

export function restoreTestNeed(r: RestoreTestRequest): Need {
  if (r.verb === 'pitr') return { role: 'operator', what: '`/restore-test pitr`', valid: true };
  return { role: r.verb === 'run' ? 'operator' : 'viewer', what: '`/restore-test`', valid: r.verb !== 'help' || !r.problem };
}

export function restoreNeed(r: RestoreRequest): Need {
  if (r.verb === 'help') return { role: 'viewer', what: '`/restore`', valid: !r.problem };
  if (r.verb === 'list') return { role: 'viewer', what: '`/restore list`', valid: true };
  // The role that may restore into it: a new database's is an operator's; a database a replacement kept, an admin's.
  if (r.verb === 'drop')
    return REPLACED_NAME.test(r.database)
      ? { role: 'admin', what: 'dropping a replaced database', valid: true }
      : { role: 'operator', what: '`/restore drop`', valid: true };
  // Creating roles on a server is an admin's call, like overwriting a database.
  if (r.withGlobals) return { role: 'admin', what: '`/restore … --with-globals`', valid: true };
  return r.into === null
    ? { role: 'operator', what: '`/restore` into a new database', valid: true }
    : { role: 'admin', what: 'a restore into an existing database', valid: true };
}

/** A slash command as the guard serves it: its text parsed once, the role derived from that, the handler given it. */
export interface CommandSpec<R> {
  command: string;
  parse(text: string): R;
  need(req: R): Need;
  handle(input: CommandInput, req: R): Promise<Reply>;
}

/** The role a command's text needs (what `roles` tests and `/backup help` reason about). */
export function requiredRole(command: string, text: string): Need {
  if (command === '/backup') return backupNeed(parseBackupText(text));
  if (command === '/restore-test') return restoreTestNeed(parseRestoreTestText(text));
  if (command === '/restore') return restoreNeed(parseRestoreText(text));
  return { role: 'admin', what: command, valid: false };
}

/**
 * Every command and click passes here: the user's role is checked against what the request needs (a refusal says
 * which role and who grants it), and the request, the decision, the job id and the answer go to the audit trail.
 */
export function guardCommand<R>(spec: CommandSpec<R>, deps: { config: Config; audit: AuditLog; groups?: GroupResolver; log: Logger }): Handler {
  const { command } = spec;
  return async (input) => {
    const req = spec.parse(input.text);
    const need = spec.need(req);
    const role = await roleOf(deps.config, input.userId, deps.groups);
    const decision = decide(role, need.role, need.what, deps.config);
    let reply: Reply;
    if (decision.allowed) {
      reply = await spec.handle(input, req);
    } else {
      const intoExisting = command === '/restore' && need.role === 'admin' && need.what === 'a restore into an existing database';
      reply = { text: `:no_entry: Refused: ${intoExisting ? whoMayRestoreInto(deps.config) : decision.reason} Nothing was started.` };
    }
    // Written after the ack, not before it: awaiting the file cost a burst of commands up to ~100 ms of its p99
    // (bench leg K). Nothing is lost for it: append() mirrors the entry to the log at once, lines are written in
    // order by one queue (audit.ts), a failed write is logged here, and a stopping bot waits for the queue
    // (deps.close). Only a crash within those milliseconds could lose a line, as it could lose any log line.
    void deps.audit
      .append({
        kind: 'command',
        userId: input.userId,
        userName: input.userName,
        what: command,
        args: input.text.slice(0, 500),
        decision: !decision.allowed ? 'refused' : need.valid ? 'allowed' : 'invalid',
        role,
        jobId: reply.jobId ?? null,
        result: reply.text.split('\n')[0]?.slice(0, 300) ?? null,
      })
      .catch((err: unknown) => deps.log.error({ err }, 'could not append to the audit trail (the entry is in the log line before)'));
    return reply;
  };
}

export function guardAction<C extends Click>(
  inner: (click: C) => Promise<Reply>,
  deps: { config: Config; audit: AuditLog; groups?: GroupResolver; log: Logger },
): (click: C) => Promise<Reply> {
  return async (click) => {
    // Ticking a checklist or acknowledging a data drift is on-call work (operator); an unknown action needs the highest role.
    const checklist = click.actionId === CHECKLIST_ACTION_ID;
    const drift = click.actionId === DRIFT_ACK_ACTION;
    const keep = click.actionId === CANCEL_ACTION || click.actionId === KEEP_REPLACED_ACTION;
    const need: Role = click.actionId === CONFIRM_ACTION ? 'admin' : keep ? 'viewer' : checklist || drift ? 'operator' : 'admin';
    const role = await roleOf(deps.config, click.userId, deps.groups);
    const dropping = click.actionId === DROP_REPLACED_ACTION;
    const what = checklist
      ? 'Ticking a checklist item'
      : drift
        ? 'Acknowledging a data drift'
        : dropping
          ? 'Dropping a replaced database'
          : 'Confirming this restore';
    const decision = decide(role, need, what, deps.config);
    const refusal = checklist || drift || dropping ? (decision.reason ?? '') : whoMayRestoreInto(deps.config);
    const reply = decision.allowed ? await inner(click) : { text: `:no_entry: Refused: ${refusal} Nothing was changed.` };
    await deps.audit
      .append({
        kind: 'action',
        userId: click.userId,
        userName: click.userName,
        what: click.actionId,
        args: click.value,
        decision: decision.allowed ? 'allowed' : 'refused',
        role,
        jobId: reply.jobId ?? null,
        result: reply.text.split('\n')[0]?.slice(0, 300) ?? null,
      })
      .catch((err: unknown) => deps.log.error({ err }, 'could not append to the audit trail'));
    return reply;
  };
}
