import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

/**
 * Slack's Socket Mode side, on the Slack stand-in's HTTP server: `apps.connections.open` (app-level token only)
 * hands out a ws:// URL; the connection gets `hello`, then envelopes that the app must ack with their
 * `envelope_id` (slash command answers travel in the ack's `payload`).
 */
export interface SocketModeSide {
  /** Resolves when an app has connected and been greeted. */
  connected(): Promise<void>;
  /** Sends a slash command envelope and resolves with the app's ack payload. */
  slashCommand(fields: Record<string, string>, timeoutMs?: number): Promise<{ payload: unknown; ms: number }>;
  close(): Promise<void>;
}

export function attachSocketMode(server: Server, origin: string): { side: SocketModeSide; openConnection(): Record<string, unknown> } {
  const wss = new WebSocketServer({ noServer: true });
  let socket: WebSocket | null = null;
  let greeted: (() => void) | null = null;
  const ready = new Promise<void>((resolve) => (greeted = resolve));
  const pending = new Map<string, (payload: unknown) => void>();
  server.on('upgrade', (req: IncomingMessage, sock: Duplex, head: Buffer) => {
    if (!req.url?.startsWith('/link')) return sock.destroy();
    wss.handleUpgrade(req, sock, head, (ws) => {
      socket = ws;
      ws.on('message', (data) => {
        const msg = JSON.parse(String(data)) as { envelope_id?: string; payload?: unknown };
        if (msg.envelope_id) pending.get(msg.envelope_id)?.(msg.payload);
      });
      ws.send(
        JSON.stringify({
          type: 'hello',
          num_connections: 1,
          debug_info: { host: 'stand-in', approximate_connection_time: 3600 },
          connection_info: { app_id: 'A0PGBBAPP' },
        }),
      );
      greeted?.();
    });
  });
  return {
    openConnection: () => ({ ok: true, url: `${origin.replace('http', 'ws')}/link?ticket=${randomUUID()}` }),
    side: {
      connected: () => ready,
      async slashCommand(fields, timeoutMs = 5000) {
        if (!socket) throw new Error('no Socket Mode connection');
        const id = randomUUID();
        const started = performance.now();
        const acked = new Promise<unknown>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no ack within the deadline')), timeoutMs);
          pending.set(id, (payload) => {
            clearTimeout(timer);
            resolve(payload);
          });
        });
        socket.send(JSON.stringify({ envelope_id: id, type: 'slash_commands', accepts_response_payload: true, payload: fields }));
        return { payload: await acked, ms: performance.now() - started };
      },
      async close() {
        for (const client of wss.clients) client.terminate();
        await new Promise<void>((r) => wss.close(() => r()));
      },
    },
  };
}
