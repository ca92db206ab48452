/**
 * An emulated network link for benchmarks/lazy: a TCP proxy in front of nginx with ONE token
 * bucket shared by all connections (a link's bandwidth, not nginx's per-connection limit_rate,
 * which would reward clients that open more connections) and a fixed round-trip delay on each
 * request. On loopback a full download costs next to nothing, which says little about a real
 * network; this is how the time comparison is made meaningful.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Link {
  readonly url: string;
  close(): Promise<void>;
}

export async function emulateLink(targetPort: number, o: { mbit: number; rttMs: number }): Promise<Link> {
  const bytesPerMs = (o.mbit * 1e6) / 8 / 1000;
  let free = 0; // time (performance.now) at which the link is next idle
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const up = connect(targetPort, '127.0.0.1');
    // No Nagle: coalescing small writes against the peer's delayed ACK adds 40 ms stalls that
    // belong to this proxy, not to the link it stands for.
    client.setNoDelay(true);
    up.setNoDelay(true);
    sockets.add(client);
    sockets.add(up);
    const end = (): void => { client.destroy(); up.destroy(); sockets.delete(client); sockets.delete(up); };
    client.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
    // Requests reach the server one round trip late (both directions' propagation, folded).
    client.on('data', (d: Buffer) => { setTimeout(() => { if (!up.destroyed) up.write(d); }, o.rttMs); });
    // Responses share the link: each piece leaves when the bucket has carried everything before it.
    up.on('data', (d: Buffer) => {
      const now = performance.now();
      free = Math.max(free, now) + d.length / bytesPerMs;
      up.pause();
      setTimeout(() => {
        if (!client.destroyed) client.write(d);
        up.resume();
      }, Math.max(0, free - now));
    });
    up.on('end', () => { setTimeout(() => client.end(), Math.max(0, free - performance.now()) + 1); });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((res) => { for (const s of sockets) s.destroy(); server.close(() => res()); }),
  };
}
