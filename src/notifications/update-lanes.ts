/**
 * Edits of one message, one at a time, newest state wins.
 *
 * Progress edits are fired without waiting (a dump must not wait on Slack), and @slack/web-api re-sends a
 * rate-limited call after its Retry-After pause. Fired side by side, an older "running — connecting" could land
 * 1.5 s after the verdict and stay there forever. So each message gets a lane: at most one edit in flight, at most
 * one waiting behind it. A newer edit replaces the waiting one (that one is dropped, never sent after it), so the
 * last edit asked for is the last one Slack receives.
 */

interface Waiting {
  send: () => Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class UpdateLanes {
  private readonly lanes = new Map<string, { waiting: Waiting | null }>();

  /**
   * Runs `send` after the edit in flight for `key`, unless a newer edit for `key` comes first. Resolves when it
   * was sent or dropped for a newer one; rejects with the send's own error.
   */
  run(key: string, send: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const next: Waiting = { send, resolve, reject };
      const lane = this.lanes.get(key);
      if (lane) {
        // Superseded before it went out: the newer state is what the message must show.
        lane.waiting?.resolve();
        lane.waiting = next;
        return;
      }
      const fresh = { waiting: null as Waiting | null };
      this.lanes.set(key, fresh);
      void this.drain(key, fresh, next);
    });
  }

  /** Edits in flight or waiting, across all messages (tests, shutdown). */
  get busy(): number {
    return this.lanes.size;
  }

  private async drain(key: string, lane: { waiting: Waiting | null }, first: Waiting): Promise<void> {
    let current: Waiting | null = first;
    while (current) {
      try {
        await current.send();
        current.resolve();
      } catch (err) {
        current.reject(err);
      }
      current = lane.waiting;
      lane.waiting = null;
    }
    this.lanes.delete(key);
  }
}
