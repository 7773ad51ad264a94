/**
 * Block Kit checks the local Slack server applies to chat.postMessage / chat.update / response_url bodies.
 * A subset of Slack's schema, chosen for the mistakes that make Slack answer `invalid_blocks` in production
 * while a lenient fake says ok: too many blocks, over-long text, empty text, duplicate ids, unknown types,
 * checkbox `initial_options` that match no option. Messages use Slack's own form
 * (`[ERROR] … [json-pointer:/blocks/0/text/text]`) so web-api logs them the same way.
 */

const BLOCK_TYPES = new Set(['section', 'divider', 'header', 'context', 'actions', 'image', 'input', 'rich_text', 'file', 'video', 'markdown']);
const ACTION_ELEMENTS = new Set([
  'button',
  'checkboxes',
  'radio_buttons',
  'static_select',
  'multi_static_select',
  'external_select',
  'users_select',
  'conversations_select',
  'channels_select',
  'overflow',
  'datepicker',
  'timepicker',
  'datetimepicker',
  'workflow_button',
]);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class BlockErrors {
  readonly list: string[] = [];
  add(pointer: string, message: string): void {
    this.list.push(`[ERROR] ${message} [json-pointer:${pointer}]`);
  }
}

function checkText(e: BlockErrors, p: string, t: unknown, max: number, plainOnly = false): void {
  if (!isObj(t)) return e.add(p, 'must be a text object');
  if (t.type !== 'plain_text' && (plainOnly || t.type !== 'mrkdwn')) {
    return e.add(`${p}/type`, plainOnly ? 'must be plain_text' : 'must be one of plain_text, mrkdwn');
  }
  if (typeof t.text !== 'string' || t.text.length === 0) return e.add(`${p}/text`, 'must be more than 0 characters');
  if (t.text.length > max) e.add(`${p}/text`, `must be less than ${max + 1} characters`);
}

function checkOption(e: BlockErrors, p: string, o: unknown): void {
  if (!isObj(o)) return e.add(p, 'must be an option object');
  checkText(e, `${p}/text`, o.text, 75);
  if (typeof o.value !== 'string' || o.value.length === 0 || o.value.length > 150) e.add(`${p}/value`, 'must be 1-150 characters');
}

function checkElement(e: BlockErrors, p: string, el: unknown, actionIds: Set<string>): void {
  if (!isObj(el) || typeof el.type !== 'string' || !ACTION_ELEMENTS.has(el.type)) return e.add(`${p}/type`, 'unsupported element type');
  if (el.action_id !== undefined) {
    if (typeof el.action_id !== 'string' || el.action_id.length > 255) e.add(`${p}/action_id`, 'must be less than 256 characters');
    else if (actionIds.has(el.action_id)) e.add(`${p}/action_id`, 'action_id must be unique within a block');
    else actionIds.add(el.action_id);
  }
  if (el.type === 'button') {
    checkText(e, `${p}/text`, el.text, 75, true);
    if (el.value !== undefined && (typeof el.value !== 'string' || el.value.length > 2000)) e.add(`${p}/value`, 'must be less than 2001 characters');
    if (el.style !== undefined && el.style !== 'primary' && el.style !== 'danger') e.add(`${p}/style`, 'must be one of primary, danger');
  }
  if (el.confirm !== undefined) {
    const c = el.confirm;
    if (!isObj(c)) e.add(`${p}/confirm`, 'must be a confirm object');
    else {
      checkText(e, `${p}/confirm/title`, c.title, 100, true);
      checkText(e, `${p}/confirm/text`, c.text, 300);
      checkText(e, `${p}/confirm/confirm`, c.confirm, 30, true);
      checkText(e, `${p}/confirm/deny`, c.deny, 30, true);
    }
  }
  if (el.type === 'checkboxes' || el.type === 'radio_buttons' || el.type === 'static_select') {
    const max = el.type === 'checkboxes' ? 10 : el.type === 'radio_buttons' ? 10 : 100;
    const options = el.options;
    if (!Array.isArray(options) || options.length === 0 || options.length > max) return e.add(`${p}/options`, `must provide 1-${max} items`);
    options.forEach((o, i) => checkOption(e, `${p}/options/${i}`, o));
    // Slack compares initial options to the options by value and text; one that matches none is rejected.
    const initial = el.type === 'checkboxes' ? el.initial_options : el.initial_option === undefined ? undefined : [el.initial_option];
    if (initial !== undefined) {
      if (!Array.isArray(initial)) return e.add(`${p}/initial_options`, 'must be an array');
      const known = new Set(options.map((o) => JSON.stringify(isObj(o) ? [o.value, o.text] : o)));
      initial.forEach((o, i) => {
        if (!known.has(JSON.stringify(isObj(o) ? [o.value, o.text] : o))) e.add(`${p}/initial_options/${i}`, 'must match one of the provided options');
      });
    }
  }
}

function checkBlock(e: BlockErrors, p: string, b: unknown, blockIds: Set<string>): void {
  if (!isObj(b)) return e.add(p, 'must be an object');
  if (typeof b.type !== 'string' || !BLOCK_TYPES.has(b.type)) return e.add(`${p}/type`, `unsupported type: ${String(b.type)}`);
  if (b.block_id !== undefined) {
    if (typeof b.block_id !== 'string' || b.block_id.length === 0 || b.block_id.length > 255) e.add(`${p}/block_id`, 'must be 1-255 characters');
    else if (blockIds.has(b.block_id)) e.add(`${p}/block_id`, `duplicate block_id: ${b.block_id}`);
    else blockIds.add(b.block_id);
  }
  const actionIds = new Set<string>();
  switch (b.type) {
    case 'section': {
      if (b.text === undefined && b.fields === undefined) return e.add(p, 'must provide text or fields');
      if (b.text !== undefined) checkText(e, `${p}/text`, b.text, 3000);
      if (b.fields !== undefined) {
        if (!Array.isArray(b.fields) || b.fields.length === 0 || b.fields.length > 10) return e.add(`${p}/fields`, 'must provide 1-10 items');
        b.fields.forEach((f, i) => checkText(e, `${p}/fields/${i}`, f, 2000));
      }
      if (b.accessory !== undefined && !(isObj(b.accessory) && b.accessory.type === 'image')) checkElement(e, `${p}/accessory`, b.accessory, actionIds);
      return;
    }
    case 'header':
      return checkText(e, `${p}/text`, b.text, 150, true);
    case 'markdown':
      if (typeof b.text !== 'string' || b.text.length === 0 || b.text.length > 12000) e.add(`${p}/text`, 'must be 1-12000 characters');
      return;
    case 'context': {
      if (!Array.isArray(b.elements) || b.elements.length === 0 || b.elements.length > 10) return e.add(`${p}/elements`, 'must provide 1-10 items');
      b.elements.forEach((el, i) => {
        if (isObj(el) && el.type === 'image') return;
        checkText(e, `${p}/elements/${i}`, el, 3000);
      });
      return;
    }
    case 'actions': {
      if (!Array.isArray(b.elements) || b.elements.length === 0 || b.elements.length > 25) return e.add(`${p}/elements`, 'must provide 1-25 items');
      b.elements.forEach((el, i) => checkElement(e, `${p}/elements/${i}`, el, actionIds));
      return;
    }
    case 'image': {
      if (typeof b.image_url !== 'string' && !isObj(b.slack_file)) e.add(`${p}/image_url`, 'must provide image_url or slack_file');
      if (typeof b.alt_text !== 'string' || b.alt_text.length === 0 || b.alt_text.length > 2000) e.add(`${p}/alt_text`, 'must be 1-2000 characters');
      return;
    }
    default:
      return;
  }
}

/** Slack's error code and messages for `blocks` as received (already JSON-parsed), or null when valid. */
/** `maxBlocks`: 50 in a message, 100 in a modal or the App Home. */
export function validateBlocks(blocks: unknown, maxBlocks = 50): { error: 'invalid_blocks' | 'invalid_blocks_format'; messages: string[] } | null {
  if (!Array.isArray(blocks)) return { error: 'invalid_blocks_format', messages: ['[ERROR] must be an array [json-pointer:/blocks]'] };
  const e = new BlockErrors();
  if (blocks.length > maxBlocks) e.add('/blocks', `must provide no more than ${maxBlocks} items`);
  const blockIds = new Set<string>();
  blocks.forEach((b, i) => checkBlock(e, `/blocks/${i}`, b, blockIds));
  return e.list.length ? { error: 'invalid_blocks', messages: e.list } : null;
}
