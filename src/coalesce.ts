/**
 * Shares one read among concurrent callers without ever answering a caller with data older than its call: a call
 * made while a read of the same key runs waits for the next read, which starts when the running one settles (so
 * after the call was made) and serves every call that arrived meanwhile. Fifty `/backup list` arriving together
 * cost two listings instead of fifty; each answer still reflects storage as it was after its request came in.
 */
export function coalesceFresh<K, T>(read: (key: K) => Promise<T>): (key: K) => Promise<T> {
  const lanes = new Map<K, { running: Promise<T>; next?: Promise<T> }>();
  const start = (key: K): Promise<T> => {
    const running = read(key);
    lanes.set(key, { running });
    // Whoever settles last clears the lane; a read queued behind this one has already replaced it.
    const clear = () => {
      if (lanes.get(key)?.running === running && !lanes.get(key)?.next) lanes.delete(key);
    };
    running.then(clear, clear);
    return running;
  };
  return (key) => {
    const lane = lanes.get(key);
    if (!lane) return start(key);
    lane.next ??= lane.running.then(
      () => start(key),
      () => start(key),
    );
    return lane.next;
  };
}
