/**
 * The control socket server ($store/miq.sock, mode 0600): while a mount owns the store, other
 * miq processes send their requests here (DESIGN §7, the shape of nix-daemon). Ops are a table
 * of named functions over the owner's store; each request runs to completion even if its client
 * goes away, so a switch is never left half done.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { chmod, chown, rename, unlink } from 'node:fs/promises';
import { MiqError } from '../store/errors.js';
import { line, lineReader, type Request } from './protocol.js';
import { probeSocket } from './client.js';

export type Emit = (event: unknown) => void;
export type ControlOp = (args: any, emit: Emit) => Promise<unknown>;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/** `owner`/`publishAt` (a user's socket, mount/users.ts): bind at `path` in a root-only directory,
 * give the socket to `owner` there, then rename it to `publishAt`. */
export async function listenControl(path: string, ops: Record<string, ControlOp>, log: (l: string) => void, opts: { owner?: { uid: number; gid: number }; publishAt?: string } = {}): Promise<ControlServer> {
  // A socket file nobody answers on is what a killed server leaves; a live one is another owner.
  if (await probeSocket(path)) throw new MiqError('MIQ_STORE_LOCKED', `another miq process is serving this store (${path} answers); stop it first`);
  await unlink(path).catch(() => {});
  const conns = new Set<Socket>();
  const running = new Set<Promise<unknown>>();
  const server: Server = createServer((sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => {});
    sock.on('data', lineReader((m) => {
      const req = m as Request;
      const send = (v: Parameters<typeof line>[0]): void => {
        if (!sock.destroyed) sock.write(line(v));
      };
      const op = ops[req.op];
      if (!op) return send({ id: req.id, ok: false, error: { code: 'MIQ_BAD_INPUT', message: `the mount's control socket has no operation "${req.op}" (is the serving miq older than this one?)` } });
      const p = op(req.args, (event) => send({ id: req.id, event })).then(
        (result) => send({ id: req.id, ok: true, result }),
        (e: unknown) => {
          if (!(e instanceof MiqError)) log(`miq mount: control ${req.op}: ${(e as Error)?.stack ?? String(e)}`);
          const err = e instanceof MiqError ? e.toJSON() : { code: 'MIQ_IO', message: `internal error in the serving miq: ${(e as Error)?.message ?? String(e)}` };
          send({ id: req.id, ok: false, error: err });
        },
      );
      running.add(p);
      void p.finally(() => running.delete(p));
    }));
  });
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(old);
  }
  await chmod(path, 0o600);
  let served = path;
  if (opts.owner && opts.publishAt) {
    await chown(path, opts.owner.uid, opts.owner.gid);
    await rename(path, opts.publishAt);
    served = opts.publishAt;
  }
  let closing: Promise<void> | undefined;
  return {
    path: served,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        await Promise.allSettled([...running]);
        for (const c of conns) c.destroy();
        await closed;
        await unlink(served).catch(() => {});
      })();
      return closing;
    },
  };
}
