import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { App, LogLevel } from '@slack/bolt';
import type { Config } from './config.ts';
import { slackInitError } from './slack-init-error.ts';
import { SlackEventsReceiver } from './slack-receiver.ts';
import { boltLogger, type Logger } from './logger.ts';
import { registerCommands, type ActionHandler, type ButtonHandler, type CheckboxHandler, type CommandHandler } from './commands/index.ts';
import { type HomeSurfaceOptions, registerHome } from './commands/home-surface.ts';

export interface SlackApp {
  /** The HTTP port of `POST /slack/events` (HTTP mode); null in Socket Mode, which opens no port. */
  port: number | null;
  stop(): Promise<void>;
}

/**
 * The Bolt app: over HTTP (slack-receiver.ts; signatures verified by Bolt's check: forged or stale requests get 401)
 * or Socket Mode when SLACK_APP_TOKEN is set. Its port answers Slack only: /healthz and /metrics have a listener of their own
 * (health/http.ts).
 */
export async function startSlackApp(options: {
  config: Config;
  log: Logger;
  handlers: Record<string, CommandHandler>;
  actions?: Record<string, ActionHandler>;
  /** Checkboxes in channel messages (checklist ticks). */
  checkboxes?: Record<string, CheckboxHandler>;
  /** Buttons in channel messages (a data drift's Acknowledge). */
  buttons?: Record<string, ButtonHandler>;
  /** The App Home dashboard (its buttons answer through `handlers`). */
  home?: Omit<HomeSurfaceOptions, 'handlers'>;
}): Promise<SlackApp> {
  const { config, log } = options;
  const socketMode = Boolean(config.slack.appToken);
  const app = new App({
    token: config.slack.botToken as string,
    ...(socketMode
      ? {
          socketMode: true,
          appToken: config.slack.appToken as string,
          // Its socket client talks to the same API URL. No port: nothing is served over HTTP in Socket Mode.
          installerOptions: { clientOptions: { slackApiUrl: config.slack.apiUrl } },
        }
      : { receiver: new SlackEventsReceiver({ signingSecret: config.slack.signingSecret as string, log: log.child({ component: 'bolt' }) }) }),
    clientOptions: { slackApiUrl: config.slack.apiUrl, retryConfig: { retries: 2 } },
    logger: boltLogger(log.child({ component: 'bolt' })) as never,
    logLevel: LogLevel.WARN,
    // Initialising calls auth.test; deferring lets us turn a bad token or an unreachable Slack into a clear error.
    deferInitialization: true,
    // Bolt's conversation store is unused here; its middleware looked every request's channel up in memory, and
    // found nothing, by building and catching an Error each time: CPU an ack under a burst can do without.
    convoStore: false,
  });
  try {
    await app.init();
  } catch (err) {
    throw slackInitError(err, config.slack.apiUrl);
  }
  registerCommands(app, options.handlers, options.actions, options.checkboxes, options.buttons);
  const home = options.home ? registerHome(app, { ...options.home, handlers: options.handlers }) : null;
  app.error(async (err) => {
    log.error({ err }, 'slack handler error');
  });
  const started = (await (socketMode ? app.start() : app.start(config.port))) as unknown;
  const port = socketMode ? null : ((started as Server).address() as AddressInfo).port;
  log.info({ port, socketMode }, socketMode ? 'connected to Slack over Socket Mode' : `listening for Slack on :${port}/slack/events`);
  return {
    port,
    async stop() {
      await home?.stop();
      await app.stop();
    },
  };
}
