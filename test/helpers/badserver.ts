/**
 * A scripted misbehaving static server on 127.0.0.1: serves a directory, except where a rule
 * for the request path says to lie, cut, bloat, stall, fail or redirect. It records, per
 * request, how many body bytes it managed to write before the client hung up, so a test can
 * prove a client cut a body off instead of reading it all.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join, normalize } from 'node:path';

export type Misbehaviour =
  | { kind: 'wrong' } // flips a byte in the body
  | { kind: 'truncate' } // announces the full length, sends half, closes
  | { kind: 'oversize'; total: number } // streams `total` bytes without a length
  | { kind: 'stall' } // sends headers and then nothing
  | { kind: 'stallHeaders' } // accepts the connection and sends nothing
  | { kind: 'status'; status: number }
  | { kind: 'redirect'; location: string }
  | { kind: 'body'; bytes: Buffer } // serves these bytes instead
  | { kind: 'slow'; ms: number }; // sends half, waits, sends the rest

export interface Served {
  path: string;
  status: number;
  sent: number;
}

export interface BadServer {
  readonly url: string;
  readonly port: number;
  readonly served: Served[];
  /** A rule for a path relative to the root ('chunks/ab/…'), or for every path with '*'. */
  rule(rel: string, m: Misbehaviour | undefined): void;
  close(): Promise<void>;
}

export async function startBadServer(root: string): Promise<BadServer> {
  const rules = new Map<string, Misbehaviour>();
  const served: Served[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void handle(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const rel = normalize(decodeURIComponent((req.url ?? '/').split('?')[0]!)).replace(/^\/+/, '');
    const rec: Served = { path: rel, status: 0, sent: 0 };
    served.push(rec);
    const m = rules.get(rel) ?? rules.get('*');
    const send = (status: number, body: Buffer, headers: Record<string, string | number> = {}): void => {
      rec.status = status;
      res.writeHead(status, { 'content-length': body.length, ...headers });
      res.end(body);
      rec.sent += body.length;
    };
    if (m?.kind === 'stallHeaders') return;
    if (m?.kind === 'status') return send(m.status, Buffer.from('nope'));
    if (m?.kind === 'redirect') return send(302, Buffer.alloc(0), { location: m.location });
    if (m?.kind === 'stall') {
      rec.status = 200;
      res.writeHead(200, { 'content-length': 1000 });
      res.write(Buffer.alloc(10));
      rec.sent = 10;
      return;
    }
    if (m?.kind === 'oversize') {
      rec.status = 200;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const piece = Buffer.alloc(64 * 1024, 7);
      const pump = (): void => {
        while (rec.sent < m.total && !res.destroyed) {
          rec.sent += piece.length;
          if (!res.write(piece)) return void res.once('drain', pump);
        }
        if (!res.destroyed) res.end();
      };
      res.on('close', () => undefined);
      pump();
      return;
    }
    let body: Buffer;
    try {
      body = m?.kind === 'body' ? m.bytes : await readFile(join(root, rel));
    } catch {
      return send(404, Buffer.from('not found'));
    }
    if (m?.kind === 'wrong') {
      body = Buffer.from(body);
      body[body.length - 1] ^= 0xff;
    }
    if (m?.kind === 'truncate') {
      rec.status = 200;
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, body.length >> 1));
      rec.sent = body.length >> 1;
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    if (m?.kind === 'slow') {
      rec.status = 200;
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, body.length >> 1));
      rec.sent = body.length >> 1;
      setTimeout(() => {
        if (res.destroyed) return;
        res.end(body.subarray(body.length >> 1));
        rec.sent = body.length;
      }, m.ms);
      return;
    }
    send(200, body);
  };

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    served,
    rule(rel, m) {
      if (m) rules.set(rel, m);
      else rules.delete(rel);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
