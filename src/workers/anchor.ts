import type { Job } from 'bullmq';
import type { ChannelMessage, MessageRef } from '../notifications/types.ts';

/**
 * A job's channel message, posted once: the first attempt posts it and keeps it in the job's data, so a retry updates
 * that message instead of posting a second one. `data` is what the job should hold from now on (a restore test
 * resolves `latest` to a backup id, kept even when the post fails); by default the job's own data.
 */
export async function openAnchor<D extends { anchor?: MessageRef | undefined }>(
  job: Job<D>,
  post: (m: ChannelMessage) => Promise<MessageRef | undefined>,
  first: ChannelMessage,
  data: D = job.data,
): Promise<MessageRef | undefined> {
  if (data.anchor) return data.anchor;
  const anchor = await post(first);
  if (anchor || data !== job.data) await job.updateData(anchor ? { ...data, anchor } : data);
  return anchor;
}
