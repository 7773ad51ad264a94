import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startSlackApp } from '../src/slack-app.ts';
import { startSlackServer, type SlackServer } from './support/slack-server.ts';
import { CLOSED_PORT } from './support/closed-port.ts';

const TOKEN = 'xoxb-start-up-test';

/** Start-up's auth.test: a refused token, a Slack this host cannot reach and an HTTP error are three different sentences. */
describe('Slack at start-up', () => {
  let slack: SlackServer;
  beforeAll(async () => {
    slack = await startSlackServer({ botToken: TOKEN });
  });
  afterAll(() => slack?.close());

  const start = (apiUrl: string, token = TOKEN) =>
    startSlackApp({
      config: loadConfig({ SLACK_BOT_TOKEN: token, SLACK_SIGNING_SECRET: 'secret', SLACK_API_URL: apiUrl, PORT: '0' }, 'bot'),
      log: createLogger({ level: 'silent' }),
      handlers: {},
    });
  const failure = (apiUrl: string, token?: string) =>
    start(apiUrl, token).then(
      async (app) => {
        await app.stop();
        throw new Error('Slack start-up should have failed');
      },
      (err: unknown) => err as { code: string; userMessage: string },
    );

  it('starts with the token the stand-in knows', async () => {
    const app = await start(slack.url);
    await app.stop();
  });

  it('a token Slack refuses (invalid_auth) is said to be the token', async () => {
    const err = await failure(slack.url, 'xoxb-someone-elses');
    expect(err.code).toBe('config_invalid');
    expect(err.userMessage).toMatch(
      /^Slack refused SLACK_BOT_TOKEN \(auth\.test at 127\.0\.0\.1:\d+ answered invalid_auth: .*\); set it to the app's Bot User OAuth Token/,
    );
  });

  it('a closed port is Slack not reachable, naming the host, not the token', async () => {
    const port = CLOSED_PORT;
    const err = await failure(`http://127.0.0.1:${port}/api/`);
    expect(err.code).toBe('slack_unreachable');
    expect(err.userMessage).toMatch(
      new RegExp(
        `^Slack is not reachable at 127\\.0\\.0\\.1:${port} \\(the connection was refused, ECONNREFUSED\\); check SLACK_API_URL and this host's network`,
      ),
    );
    expect(err.userMessage).not.toMatch(/did not accept|refused SLACK_BOT_TOKEN/);
  });

  it('a host that does not resolve is Slack not reachable, naming the host', async () => {
    const err = await failure('http://pgbb-no-such-host.invalid/api/');
    expect(err.code).toBe('slack_unreachable');
    expect(err.userMessage).toMatch(/^Slack is not reachable at pgbb-no-such-host\.invalid \(the name does not resolve.*, (ENOTFOUND|EAI_AGAIN)\)/);
  });

  it('an HTTP error (SLACK_API_URL naming something that is not the Web API) is said as such', async () => {
    const err = await failure(slack.url.replace(/\/api\/$/, '/not-the-api/'));
    expect(err.code).toBe('slack_unreachable');
    expect(err.userMessage).toMatch(/^Slack at 127\.0\.0\.1:\d+ answered auth\.test with HTTP 404, not a Slack API answer; check SLACK_API_URL/);
  });

  it('`pg-backup-bot bot` says it in one line on stderr, without a stack trace', async () => {
    const port = CLOSED_PORT;
    const run = await execa('node', ['bin/pg-backup-bot.js', 'bot'], {
      env: {
        PATH: process.env.PATH ?? '',
        SLACK_BOT_TOKEN: TOKEN,
        SLACK_SIGNING_SECRET: 'secret',
        SLACK_API_URL: `http://127.0.0.1:${port}/api/`,
        REDIS_URL: inject('redisUrl'),
        PORT: '0',
        METRICS_PORT: '0',
        LOG_LEVEL: 'silent',
      },
      extendEnv: false,
      reject: false,
      timeout: 30_000,
    });
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^Slack is not reachable at 127\\.0\\.0\\.1:${port} \\(the connection was refused, ECONNREFUSED\\);[^\\n]*$`));
  });
});
