import { describe, expect, it } from 'vitest';
import { cliFailure } from '../../src/cli/cli-failure.ts';
import { BotError } from '../../src/errors.ts';

describe('cliFailure', () => {
  it('says ours as users read them, and anything else with its first line, passwords redacted', () => {
    expect(cliFailure(new BotError('config_invalid', 'Set S3_BUCKET.'))).toBe('Set S3_BUCKET.');
    expect(cliFailure(new Error('connect to postgres://app:hunter2@db:5432/shop refused\n    at stack'))).toBe(
      'Something unexpected went wrong inside the bot: connect to postgres://app:[redacted]@db:5432/shop refused.',
    );
    expect(cliFailure('a string')).toBe('Something unexpected went wrong inside the bot: a string.');
    // Redacted before it is cut: a cut inside the password would leave no `@` to find (second reader).
    const long = cliFailure(new Error(`${'x'.repeat(280)} postgres://app:Sup3rSecretPassword@db/shop`));
    expect(long).not.toContain('Sup3r');
    expect(long).toContain('postgres://app:[red');
  });
});
