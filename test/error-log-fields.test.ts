import { describe, expect, it } from 'vitest';
import { BotError, errorLogFields } from '../src/errors.ts';

describe('errorLogFields', () => {
  it('logs a request that could not be as its code and sentence, and anything else with its stack', () => {
    const typo = new BotError('backup_not_found', 'There is no finished backup shop-20261205T095011Z of shop.');
    expect(errorLogFields(typo)).toEqual({ code: 'backup_not_found', reason: 'There is no finished backup shop-20261205T095011Z of shop.' });
    expect(JSON.stringify(errorLogFields(new BotError('bad_request', '"--intoo=shop" is not an option')))).not.toContain('stack');
    const fault = new BotError('storage_failed', 'The disk refused the write.');
    expect(errorLogFields(fault)).toEqual({ err: fault });
    const bug = new TypeError('x is undefined');
    expect(errorLogFields(bug)).toEqual({ err: bug });
  });
});
