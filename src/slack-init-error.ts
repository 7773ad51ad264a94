import { BotError } from './errors.ts';

/** What Slack answers auth.test with when it has the token and does not take it. */
const REFUSED: Record<string, string> = {
  invalid_auth: 'it is not a valid token for this workspace',
  not_authed: 'no token reached it',
  account_inactive: 'the app or its workspace has been deactivated',
  token_revoked: 'the token was revoked (the app was uninstalled or its token regenerated)',
  token_expired: 'the token has expired',
};

/** Request errors by the code of their cause (undici's fetch wraps the socket's error as `cause`). */
const UNREACHABLE: Record<string, string> = {
  ENOTFOUND: 'the name does not resolve',
  EAI_AGAIN: 'the name does not resolve (DNS did not answer)',
  ECONNREFUSED: 'the connection was refused',
  ECONNRESET: 'the connection was reset',
  ETIMEDOUT: 'the connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'the connection timed out',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
};

interface SlackLikeError {
  code?: unknown;
  message?: unknown;
  data?: { error?: unknown };
  statusCode?: unknown;
  original?: { name?: unknown; code?: unknown; cause?: { code?: unknown } };
}

/**
 * Bolt's start-up auth.test failed: a sentence that tells a refused token from a Slack this host cannot reach and
 * from a Slack (or whatever SLACK_API_URL names) answering with an HTTP error. Only the first is about the token.
 */
export function slackInitError(err: unknown, apiUrl: string): BotError {
  const e = (typeof err === 'object' && err !== null ? err : {}) as SlackLikeError;
  const host = hostOf(apiUrl);
  if (e.code === 'slack_webapi_platform_error') {
    const answer = String(e.data?.error ?? 'an error');
    const why = REFUSED[answer];
    const message = why
      ? `Slack refused SLACK_BOT_TOKEN (auth.test at ${host} answered ${answer}: ${why}); set it to the app's Bot User OAuth Token (xoxb-…) from its OAuth & Permissions page.`
      : `Slack did not accept SLACK_BOT_TOKEN: auth.test at ${host} answered ${answer}.`;
    return new BotError('config_invalid', message, { cause: err });
  }
  if (e.code === 'slack_webapi_request_error') {
    const code = String(e.original?.cause?.code ?? e.original?.code ?? (e.original?.name === 'TimeoutError' ? 'ETIMEDOUT' : ''));
    const why = UNREACHABLE[code] ?? 'the request failed';
    return new BotError(
      'slack_unreachable',
      `Slack is not reachable at ${host} (${why}${code ? `, ${code}` : ''}); check SLACK_API_URL and this host's network, DNS and proxy — the token was not checked.`,
      { cause: err },
    );
  }
  if (e.code === 'slack_webapi_http_error') {
    return new BotError(
      'slack_unreachable',
      `Slack at ${host} answered auth.test with HTTP ${String(e.statusCode)}, not a Slack API answer; check SLACK_API_URL (Slack's is https://slack.com/api/) or https://status.slack.com — the token was not checked.`,
      { cause: err },
    );
  }
  const detail = typeof e.message === 'string' ? e.message : String(err);
  return new BotError('slack_unreachable', `Could not check SLACK_BOT_TOKEN with Slack (auth.test at ${host}): ${detail}`, { cause: err });
}

function hostOf(apiUrl: string): string {
  try {
    return new URL(apiUrl).host;
  } catch {
    return apiUrl;
  }
}
