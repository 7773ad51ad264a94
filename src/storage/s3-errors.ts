import { BotError } from '../errors.ts';

/**
 * S3 failures as sentences people can act on. Only the error's name, HTTP status or network code is shown:
 * never its message, request ids or the endpoint URL (which could carry credentials), and never credentials.
 */

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

function shape(err: unknown): SdkErrorShape {
  return typeof err === 'object' && err !== null ? (err as SdkErrorShape) : {};
}

export function s3Status(err: unknown): number | undefined {
  const s = shape(err).$metadata?.httpStatusCode;
  return typeof s === 'number' ? s : undefined;
}

export function s3ErrorName(err: unknown): string {
  const { name, code } = shape(err);
  // Network failures surface as plain Errors carrying an errno code (ECONNREFUSED, ENOTFOUND…).
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  return typeof name === 'string' && name !== 'Error' ? name : 'unknown error';
}

/** The key (not the bucket) is missing. HeadObject answers a bare 404 with no body, hence `NotFound`. */
export function isS3NotFound(err: unknown): boolean {
  const name = s3ErrorName(err);
  return name === 'NoSuchKey' || name === 'NotFound' || (s3Status(err) === 404 && name !== 'NoSuchBucket');
}

/** A conditional write lost (`If-None-Match: *` on a key that exists, or a concurrent one: 409 ConditionalRequestConflict). */
export function isS3PreconditionFailed(err: unknown): boolean {
  const name = s3ErrorName(err);
  return name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || s3Status(err) === 412;
}

const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'TimeoutError']);
const DENIED = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'AllAccessDisabled']);

/**
 * The SDK's errors carry the raw HTTP exchange (`$response`, and through it the signed request headers with the
 * access key id): the cause kept for logs holds only the name, message, code and status.
 */
function plainCause(err: unknown, name: string, status: number | undefined): Error {
  const message = err instanceof Error ? err.message : String(err);
  return Object.assign(new Error(message), { name, ...(status !== undefined ? { httpStatusCode: status } : {}) });
}

/** `where` is the storage's description (`s3://bucket/prefix`); `action` a verb phrase, e.g. `write the manifest`. */
export function s3Error(err: unknown, where: string, action: string): BotError {
  if (err instanceof BotError) return err;
  const name = s3ErrorName(err);
  const status = s3Status(err);
  err = plainCause(err, name, status);
  const tag = status !== undefined && !name.includes(String(status)) ? `${name}, HTTP ${status}` : name;
  if (name === 'CredentialsProviderError') {
    return new BotError(
      'storage_failed',
      `Could not ${action} in ${where}: the bot found no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or an instance role).`,
      { cause: err },
    );
  }
  if (DENIED.has(name) || status === 403) {
    return new BotError('storage_failed', `S3 refused to let the bot ${action} in ${where} (${tag}); check the credentials and the bucket policy.`, {
      cause: err,
    });
  }
  if (name === 'NoSuchBucket') {
    return new BotError('storage_failed', `Could not ${action}: the bucket of ${where} does not exist; check S3_BUCKET and S3_REGION.`, { cause: err });
  }
  if (NETWORK.has(name)) {
    return new BotError('storage_failed', `Could not reach S3 to ${action} in ${where} (${tag}); check S3_ENDPOINT and the network.`, { cause: err });
  }
  return new BotError('storage_failed', `Could not ${action} in ${where} (${tag}).`, { cause: err });
}
