/**
 * The Events API v2 rules the local PagerDuty server enforces, with PagerDuty's 400 shape in mind
 * (`errors: [...]`). Stricter than PagerDuty in one place: unknown fields inside `payload` are rejected
 * too, because a misspelt `custom_details` would otherwise drop the details from every page silently.
 */

export type PdAction = 'trigger' | 'acknowledge' | 'resolve';
export type PdSeverity = 'critical' | 'error' | 'warning' | 'info';

export interface PdEvent {
  routing_key: string;
  event_action: PdAction;
  dedup_key?: string;
  payload?: {
    summary: string;
    source: string;
    severity: PdSeverity;
    timestamp?: string;
    component?: string;
    group?: string;
    class?: string;
    custom_details?: Record<string, unknown>;
  };
  images?: Array<{ src: string; href?: string; alt?: string }>;
  links?: Array<{ href: string; text?: string }>;
  client?: string;
  client_url?: string;
}

const TOP_LEVEL = new Set(['routing_key', 'event_action', 'dedup_key', 'payload', 'images', 'links', 'client', 'client_url']);
const PAYLOAD = new Set(['summary', 'source', 'severity', 'timestamp', 'component', 'group', 'class', 'custom_details']);
const ACTIONS = new Set(['trigger', 'acknowledge', 'resolve']);
const SEVERITIES = new Set(['critical', 'error', 'warning', 'info']);
// ISO 8601 date-time with a zone (PagerDuty's own examples: 2015-07-17T08:42:58.315+0000).
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The messages PagerDuty would list in `errors` (empty when the event is valid). */
export function validatePdEvent(body: unknown, routingKey: string): string[] {
  if (!isObj(body)) return ['Event object must be a JSON object'];
  const errors: string[] = [];
  for (const key of Object.keys(body)) if (!TOP_LEVEL.has(key)) errors.push(`Unknown field '${key}'`);

  // A key of the wrong shape and a well-formed key that names no integration get the same answer.
  if (typeof body.routing_key !== 'string' || body.routing_key.length !== 32 || body.routing_key !== routingKey) {
    errors.push('Invalid routing key');
  }
  const action = body.event_action;
  if (typeof action !== 'string' || !ACTIONS.has(action)) {
    errors.push("'event_action' is missing or invalid (must be one of trigger, acknowledge, resolve)");
  }
  const dedup = body.dedup_key;
  if (dedup !== undefined && (typeof dedup !== 'string' || dedup.length > 255)) errors.push("'dedup_key' must be a string of at most 255 characters");
  if ((action === 'acknowledge' || action === 'resolve') && (typeof dedup !== 'string' || dedup.length === 0)) {
    errors.push(`'dedup_key' is required for ${action} events`);
  }

  if (action === 'trigger' || body.payload !== undefined) {
    const p = body.payload;
    if (!isObj(p)) errors.push("'payload' is missing or not an object");
    else {
      for (const key of Object.keys(p)) if (!PAYLOAD.has(key)) errors.push(`Unknown field 'payload.${key}'`);
      if (typeof p.summary !== 'string' || p.summary.length === 0 || p.summary.length > 1024) {
        errors.push("'payload.summary' must be 1 to 1024 characters");
      }
      if (typeof p.source !== 'string' || p.source.length === 0) errors.push("'payload.source' is missing or blank");
      if (typeof p.severity !== 'string' || !SEVERITIES.has(p.severity)) {
        errors.push("'payload.severity' must be one of critical, error, warning, info");
      }
      if (p.timestamp !== undefined && (typeof p.timestamp !== 'string' || !ISO_8601.test(p.timestamp) || Number.isNaN(Date.parse(p.timestamp)))) {
        errors.push("'payload.timestamp' must be an ISO 8601 date-time");
      }
      for (const key of ['component', 'group', 'class'] as const) {
        if (p[key] !== undefined && typeof p[key] !== 'string') errors.push(`'payload.${key}' must be a string`);
      }
      if (p.custom_details !== undefined && !isObj(p.custom_details)) errors.push("'payload.custom_details' must be an object");
    }
  }

  if (body.images !== undefined && !(Array.isArray(body.images) && body.images.every((i) => isObj(i) && typeof i.src === 'string'))) {
    errors.push("'images' must be an array of objects with 'src'");
  }
  if (body.links !== undefined && !(Array.isArray(body.links) && body.links.every((l) => isObj(l) && typeof l.href === 'string'))) {
    errors.push("'links' must be an array of objects with 'href'");
  }
  for (const key of ['client', 'client_url'] as const) {
    if (body[key] !== undefined && typeof body[key] !== 'string') errors.push(`'${key}' must be a string`);
  }
  return errors;
}
