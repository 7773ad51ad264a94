import type { Config } from '../config.ts';

/** viewer ⊂ operator ⊂ admin: each role may do everything the ones before it may. */
export type Role = 'viewer' | 'operator' | 'admin';
const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

/** Slack user group membership (S… IDs), resolved through the Web API and cached; null when unavailable. */
export type GroupResolver = (groupId: string) => Promise<string[] | null>;

export interface Decision {
  allowed: boolean;
  role: Role | null;
  /** For a refusal: which role is needed and who can grant it. */
  reason: string | null;
}

/**
 * The role of a user. Without role config: everyone is an operator (may list and back up), nobody an admin —
 * except users named in `restore.allowedUsers`, who may restore into existing databases (issue-3 setting).
 */
export async function roleOf(config: Config, userId: string, groups?: GroupResolver): Promise<Role | null> {
  const roles = config.roles;
  const allowedInto = config.restore.allowedUsers.includes(userId);
  if (!roles) return allowedInto ? 'admin' : 'operator';
  for (const role of ['admin', 'operator', 'viewer'] as const) {
    for (const principal of roles[role]) {
      if (principal === userId) return role;
      if (principal.startsWith('S') && groups) {
        const members = await groups(principal);
        if (members?.includes(userId)) return role;
      }
    }
  }
  return allowedInto ? 'admin' : null;
}

export function decide(role: Role | null, needed: Role, what: string, config: Config): Decision {
  if (role !== null && RANK[role] >= RANK[needed]) return { allowed: true, role, reason: null };
  const admins = config.roles?.admin ?? [];
  const ask =
    admins.length > 0 ? ` Ask an admin (${admins.map((a) => (a.startsWith('S') ? `<!subteam^${a}>` : `<@${a}>`)).join(', ')})` : ' Ask whoever runs the bot';
  return {
    allowed: false,
    role,
    reason: `${what} needs the *${needed}* role; you have ${role ? `*${role}*` : 'none'}.${ask} to add you to \`roles.${needed}\` in the config file.`,
  };
}

/**
 * Caches group membership for five minutes: slash commands must ack within 3 s. One call to Slack per group at a
 * time, shared by every command waiting for it: when the entry had expired, a burst of fifty commands made fifty
 * `usergroups.users.list` calls (a Tier 2 method, about 20 a minute) and every ack waited for Slack. While an entry
 * is in its last fifth it is refreshed in the background, so a busy channel never waits; it is never used once
 * older than `ttlMs` unless Slack cannot be reached (then the last answer stands, as before).
 */
export function cachedGroups(fetchMembers: (groupId: string) => Promise<string[]>, ttlMs = 5 * 60_000): GroupResolver {
  const cache = new Map<string, { at: number; members: string[] }>();
  const inFlight = new Map<string, Promise<string[] | null>>();
  const refresh = (groupId: string): Promise<string[] | null> => {
    let pending = inFlight.get(groupId);
    if (!pending) {
      pending = fetchMembers(groupId).then(
        (members) => {
          cache.set(groupId, { at: Date.now(), members });
          return members;
        },
        () => cache.get(groupId)?.members ?? null,
      );
      inFlight.set(groupId, pending);
      void pending.finally(() => inFlight.delete(groupId));
    }
    return pending;
  };
  return async (groupId) => {
    const hit = cache.get(groupId);
    const age = hit ? Date.now() - hit.at : Number.POSITIVE_INFINITY;
    if (!hit || age >= ttlMs) return refresh(groupId);
    if (age >= ttlMs * 0.8) void refresh(groupId);
    return hit.members;
  };
}
