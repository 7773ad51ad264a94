import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { App, LogLevel } from '@slack/bolt';
import type { Config } from './config.ts';
import { BotError } from './errors.ts';
import { boltLogger, type Logger } from './logger.ts';
import { registerCommands, type ActionHandler, type CommandHandler } from './commands/index.ts';


export interface SlackApp {
  /** The HTTP port Slack requests arrive on (`POST /slack/events`); null in Socket Mode. */
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
  healthy: () => Promise<boolean>;
  /** Prometheus text for GET /metrics. */
  metrics?: () => Promise<{ contentType: string; body: string }>;
}): Promise<SlackApp> {
  const { config, log } = options;
  const socketMode = Boolean(config.slack.appToken);
  const app = new App({
    token: config.slack.botToken as string,
    ...(socketMode ? { socketMode: true, appToken: config.slack.appToken as string } : { signingSecret: config.slack.signingSecret as string }),
    clientOptions: { slackApiUrl: config.slack.apiUrl, retryConfig: { retries: 2 } },
    logger: boltLogger(log.child({ component: 'bolt' })) as never,
    logLevel: LogLevel.WARN,
    // Initialising calls auth.test; deferring lets us turn a bad token or an unreachable Slack into a clear error.
    deferInitialization: true,
    ...(socketMode
      ? {}
      : {
          customRoutes: [
            {
              path: '/healthz',
              method: ['GET'],
              handler: (_req, res) => {
                options.healthy().then(
                  (ok) => {
                    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
                    res.end(ok ? 'ok\n' : 'unhealthy\n');
                  },
                  () => {
                    res.writeHead(503);
                    res.end('unhealthy\n');
                  },
                );
              },
            },
            {
              path: '/metrics',
              method: ['GET'],
              handler: (_req, res) => {
                if (!options.metrics) {
                  res.writeHead(404);
                  res.end();
                  return;
                }
                options.metrics().then(
                  (m) => {
                    res.writeHead(200, { 'content-type': m.contentType });
                    res.end(m.body);
                  },
                  (err: unknown) => {
                    log.warn({ err }, 'metrics scrape failed');
                    res.writeHead(503, { 'content-type': 'text/plain' });
                    res.end('metrics unavailable\n');
                  },
                );
              },
            },
          ],
        }),
  });
  try {
    await app.init();
  } catch (err) {
    throw new BotError('config_invalid', `Slack did not accept SLACK_BOT_TOKEN (auth.test at ${config.slack.apiUrl}): ${(err as Error).message}`, { cause: err });
  }
  registerCommands(app, options.handlers, options.actions);
  app.error(async (err) => {
    log.error({ err }, 'slack handler error');
  });
  const started = (await app.start(config.port)) as unknown;
  const port = socketMode ? null : ((started as Server).address() as AddressInfo).port;
  log.info({ port, socketMode }, socketMode ? 'connected to Slack over Socket Mode' : `listening for Slack on :${port}/slack/events`);
  return {
    port,
    async stop() {
      await app.stop();
    },
  };
}
