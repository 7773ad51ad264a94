import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { App, LogLevel, type CustomRoute } from '@slack/bolt';
import type { Config } from './config.ts';
import { BotError } from './errors.ts';
import { boltLogger, type Logger } from './logger.ts';
import { registerCommands, type ActionHandler, type CheckboxHandler, type CommandHandler } from './commands/index.ts';

export interface SlackApp {
  /** The HTTP port: Slack requests at `POST /slack/events` (HTTP mode), `/healthz` and `/metrics` (both modes). */
  port: number | null;
  stop(): Promise<void>;
}

/**
 * The Bolt app: HTTP receiver (signatures verified by Bolt: forged or stale requests get 401) or Socket Mode when
 * SLACK_APP_TOKEN is set. `/healthz` answers 200 only when `healthy()` does.
 */
export async function startSlackApp(options: {
  config: Config;
  log: Logger;
  handlers: Record<string, CommandHandler>;
  actions?: Record<string, ActionHandler>;
  /** Checkboxes in channel messages (checklist ticks). */
  checkboxes?: Record<string, CheckboxHandler>;
  healthy: () => Promise<boolean>;
  /** Prometheus text for GET /metrics. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
}): Promise<SlackApp> {
  const { config, log } = options;
  const socketMode = Boolean(config.slack.appToken);
  const routes = httpRoutes(options, log);
  const app = new App({
    token: config.slack.botToken as string,
    ...(socketMode
      ? {
          socketMode: true,
          appToken: config.slack.appToken as string,
          // In Socket Mode, Bolt serves custom routes on installerOptions.port; its socket client talks to the same API URL.
          installerOptions: { port: config.port, clientOptions: { slackApiUrl: config.slack.apiUrl } },
        }
      : { signingSecret: config.slack.signingSecret as string }),
    clientOptions: { slackApiUrl: config.slack.apiUrl, retryConfig: { retries: 2 } },
    logger: boltLogger(log.child({ component: 'bolt' })) as never,
    logLevel: LogLevel.WARN,
    // Initialising calls auth.test; deferring lets us turn a bad token or an unreachable Slack into a clear error.
    deferInitialization: true,
    // Bolt's conversation store is unused here; its middleware looked every request's channel up in memory, and
    // found nothing, by building and catching an Error each time: CPU an ack under a burst can do without.
    convoStore: false,
    customRoutes: routes,
  });
  try {
    await app.init();
  } catch (err) {
    throw new BotError('config_invalid', `Slack did not accept SLACK_BOT_TOKEN (auth.test at ${config.slack.apiUrl}): ${(err as Error).message}`, {
      cause: err,
    });
  }
  registerCommands(app, options.handlers, options.actions, options.checkboxes);
  app.error(async (err) => {
    log.error({ err }, 'slack handler error');
  });
  const started = (await app.start(config.port)) as unknown;
  const port = socketMode ? config.port : ((started as Server).address() as AddressInfo).port;
  log.info({ port, socketMode }, socketMode ? 'connected to Slack over Socket Mode' : `listening for Slack on :${port}/slack/events`);
  return {
    port,
    async stop() {
      await app.stop();
    },
  };
}

/** GET /healthz and GET /metrics, served beside Slack's endpoint (HTTP mode) or on PORT (Socket Mode). */
function httpRoutes(options: { healthy: () => Promise<boolean>; metrics?: () => Promise<{ contentType: string; body: string }> }, log: Logger): CustomRoute[] {
  const reply = (res: ServerResponse, work: Promise<{ status: number; type: string; body: string }>) =>
    work.then(
      (r) => {
        res.writeHead(r.status, { 'content-type': r.type });
        res.end(r.body);
      },
      (err: unknown) => {
        log.warn({ err }, 'health or metrics endpoint failed');
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('unavailable\n');
      },
    );
  return [
    {
      path: '/healthz',
      method: ['GET'],
      handler: (_req, res) =>
        void reply(
          res,
          options.healthy().then((ok) => ({ status: ok ? 200 : 503, type: 'text/plain', body: ok ? 'ok\n' : 'unhealthy\n' })),
        ),
    },
    {
      path: '/metrics',
      method: ['GET'],
      handler: (_req, res) =>
        void reply(
          res,
          options.metrics
            ? options.metrics().then((m) => ({ status: 200, type: m.contentType, body: m.body }))
            : Promise.resolve({ status: 404, type: 'text/plain', body: 'not served\n' }),
        ),
    },
  ];
}
