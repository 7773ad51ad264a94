/** A message for the channel: plain text (notifications, fallbacks) plus Block Kit blocks. */
export interface ChannelMessage {
  text: string;
  blocks?: Block[];
}

export type Block = Record<string, unknown> & { type: string };

/** Where a posted message lives, so it can be updated in place and threaded under. */
export interface MessageRef {
  channel: string;
  ts: string;
}

/** The channel (#incidents): one message per job, updated in place, details in its thread. */
export interface Notifier {
  post(message: ChannelMessage): Promise<MessageRef>;
  update(ref: MessageRef, message: ChannelMessage): Promise<void>;
  reply(ref: MessageRef, message: ChannelMessage): Promise<void>;
}
