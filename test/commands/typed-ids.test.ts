import { describe, expect, it } from 'vitest';
import { parseBackupText } from '../../src/commands/backup-text.ts';
import { parseRestoreTestText, parseRestoreText } from '../../src/commands/restore-text.ts';
import { didYouMean, repairedBackupId, unwrapWord } from '../../src/commands/typed-ids.ts';
import { asOption } from '../../src/restore-scope.ts';

const ID = 'shop-20261205T020000Z';

describe('ids as people paste and type them', () => {
  it('unwraps Slack code backticks and quotes, and leaves an option’s quoted identifier alone', () => {
    expect(unwrapWord(`\`${ID}\``)).toBe(ID);
    expect(unwrapWord(`\`\`\`${ID}\`\`\``)).toBe(ID);
    expect(unwrapWord(`'${ID}'`)).toBe(ID);
    expect(unwrapWord(`"${ID}"`)).toBe(ID);
    expect(unwrapWord('`--into=shop`')).toBe('--into=shop');
    expect(unwrapWord('--into=`shop`')).toBe('--into=shop');
    expect(unwrapWord('--table="User"')).toBe('--table="User"');
    expect(unwrapWord('`half')).toBe('`half');
  });

  it('repairs an id whose Z was left off or whose T and Z are in lower case, and nothing else', () => {
    expect(repairedBackupId(ID.slice(0, -1))).toBe(ID);
    expect(repairedBackupId('shop-20261205t020000z')).toBe(ID);
    expect(repairedBackupId('shop-20261205t020000z-2')).toBe(`${ID}-2`);
    // A sentence's full stop or comma copied with it (QA).
    expect(repairedBackupId(`${ID}.`)).toBe(ID);
    expect(repairedBackupId(`${ID},`)).toBe(ID);
    expect(didYouMean(`${ID}.`)).toBe(` Did you mean \`${ID}\`?`);
    expect(repairedBackupId(ID)).toBeNull();
    expect(repairedBackupId('shop-2026120T020000')).toBeNull();
    expect(repairedBackupId('SHOP-20261205T020000Z')).toBeNull();
    expect(didYouMean('latets')).toBe('');
  });

  it('an option whose -- autocorrect made a dash (—into, –table) is read as typed meant (QA: refused without a hint)', () => {
    expect(parseRestoreText(`${ID} \u2014into=app`)).toMatchObject({ verb: 'restore', backupId: ID, into: 'app' });
    expect(parseRestoreText(`${ID} \u2013table=shop.orders \u2014into=app`)).toMatchObject({ tables: ['shop.orders'], into: 'app' });
    expect(parseBackupText('now \u2014physical shop')).toEqual({ verb: 'now', target: 'shop', physical: true });
    // A dash inside a word is left alone.
    expect(parseRestoreText(`${ID} --into=my\u2014app`)).toMatchObject({ verb: 'help' });
    // And inside a quoted name (second reader).
    expect(parseRestoreText(`${ID} --table="Audit \u2014log"`)).toMatchObject({ tables: ['"Audit \u2014log"'] });
  });

  it('/restore, /restore-test and /backup diff take an id in backticks or quotes as the id', () => {
    expect(parseRestoreText(`\`${ID}\` --into=\`shop\``)).toMatchObject({ verb: 'restore', backupId: ID, into: 'shop' });
    expect(parseRestoreText(`'${ID}' --table="User"`)).toMatchObject({ verb: 'restore', backupId: ID, tables: ['"User"'] });
    expect(parseRestoreTestText(`\`${ID}\``)).toEqual({ verb: 'run', which: { latest: false, backupId: ID } });
    expect(parseRestoreTestText(`\u201C${ID}\u201D`)).toEqual({ verb: 'run', which: { latest: false, backupId: ID } });
    expect(parseBackupText(`diff \`${ID}\` \`shop-20261206T020000Z\``)).toEqual({ verb: 'diff', a: ID, b: 'shop-20261206T020000Z' });
    // Slack turns typed quotes into curly ones.
    expect(parseBackupText('now \u201Cshop\u201D')).toEqual({ verb: 'now', target: 'shop' });
  });

  it('takes a database name with - or $ for --into and drop, and says what a name may hold (QA: `my-app` refused)', () => {
    expect(parseRestoreText(`${ID} --into=my-app`)).toMatchObject({ verb: 'restore', into: 'my-app' });
    expect(parseRestoreText('drop my-app_replaced_20261207t033026')).toEqual({ verb: 'drop', database: 'my-app_replaced_20261207t033026' });
    expect(parseRestoreText('LIST')).toEqual({ verb: 'list' });
    expect(parseRestoreText('Drop my-app')).toEqual({ verb: 'drop', database: 'my-app' });
    expect(parseRestoreText(`${ID} --into=9app`)).toMatchObject({
      verb: 'help',
      problem: '"9app" is not a database name (a database name here is letters, digits, _, $ and -, starting with a letter or _, at most 63 characters).',
    });
  });

  it('says which id a nearly right one must be, and runs nothing on a guess', () => {
    const typo = ID.slice(0, -1);
    expect(parseRestoreTestText(typo)).toEqual({
      verb: 'help',
      problem: `"${typo}" is neither \`latest\`, \`history\` nor a backup id. Did you mean \`${ID}\`?`,
    });
    expect(parseRestoreText('shop-20261205t020000z')).toEqual({
      verb: 'help',
      problem: `"shop-20261205t020000z" is not a backup id (see \`/backup list\`). Did you mean \`${ID}\`?`,
    });
    expect(parseBackupText(`diff ${typo} ${ID}`)).toMatchObject({ verb: 'help', problem: expect.stringContaining(`Did you mean \`${ID}\`?`) });
  });

  it('an option the bot suggests (--table=…, --schema=…) is one /restore takes back as it is', () => {
    expect(asOption('orders')).toBe('orders');
    expect(asOption('User')).toBe('"User"');
    expect(asOption('Audit Log')).toBe('"Audit Log"');
    expect(asOption('say "hi"')).toBe('"say ""hi"""');
    const suggested = `--table=${asOption('my schema')}.${asOption('Audit Log')}`;
    expect(parseRestoreText(`${ID} ${suggested}`)).toMatchObject({ verb: 'restore', tables: ['"my schema"."Audit Log"'] });
  });
});
