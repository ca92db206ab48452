/**
 * What every command shares: the global options, opening the store, printing.
 * Commands parse, call one module function, and print; they do no work themselves.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { PruneStore, Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { viaServer, withStore as withStoreOrServer } from '../mount/client.js';

export interface GlobalOptions {
  store?: string;
  json?: boolean;
  debug?: boolean;
}

/** $MIQ_HOME, else --store, else $XDG_DATA_HOME/miq, else /var/lib/miq for root (DESIGN §4). */
export function storeDir(opts: GlobalOptions): string {
  if (opts.store) return resolve(opts.store);
  if (process.env.MIQ_HOME) return resolve(process.env.MIQ_HOME);
  if (process.getuid?.() === 0) return '/var/lib/miq';
  const xdg = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(xdg, 'miq');
}

/**
 * A key argument as `miq key generate NAME` names it: a file that exists is taken as given;
 * else NAME, NAME.key or NAME.pub in <store>/keys, where `key generate` writes them.
 */
export function keyFile(opts: GlobalOptions, spec: string, ext: '.key' | '.pub'): string {
  if (existsSync(spec)) return spec;
  const inStore = join(storeDir(opts), 'keys', spec.endsWith(ext) ? spec : `${spec}${ext}`);
  if (!spec.includes('/') && existsSync(inStore)) return inStore;
  if (ext === '.pub') return spec; // NAME:BASE64, parsed (and refused, if neither) by the caller
  throw new MiqError('MIQ_NOT_FOUND', `no signing key "${spec}": neither a file nor ${inStore}; \`miq key generate ${spec.replace(/\.key$/, '')}\` makes one`);
}

/** Trusted-key arguments with store key names turned into their .pub files. */
export function trustedKeyFiles(opts: GlobalOptions, specs: readonly string[]): string[] {
  return specs.map((k) => (/^[A-Za-z0-9+._-]+:[A-Za-z0-9+/=]{43,44}$/.test(k) ? k : keyFile(opts, k, '.pub')));
}

export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v)}\n`);
}


/** Global options of the root program, from any subcommand. */
export function globals(cmd: { optsWithGlobals(): Record<string, unknown> }): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** Runs `fn` against the store: through a running mount's control socket when one serves it
 * (LevelDB allows one process), else opened directly and closed after (also on error). */
export async function withStore<T>(opts: GlobalOptions, fn: (store: Store) => Promise<T>): Promise<T> {
  return withStoreOrServer(storeDir(opts), fn);
}

/** Whole-store maintenance (gc, verify, stats) runs in the serving process when the store is
 * mounted, else here on the store's maintenance capability. */
export function onLocal<T>(store: Store, op: string, args: unknown, fn: (s: PruneStore) => Promise<T>, onEvent?: (e: unknown) => void): Promise<T> {
  return viaServer(store, op, args, fn, onEvent);
}

/** A one-line progress display on a TTY; silent otherwise (and with --json). */
export function progressLine(opts: GlobalOptions): { update(text: string): void; done(): void } {
  const on = process.stderr.isTTY === true && !opts.json;
  let shown = false;
  return {
    update(text: string) {
      if (!on) return;
      const cols = process.stderr.columns || 80;
      process.stderr.write(`\r\x1b[K${text.slice(0, cols - 1)}`);
      shown = true;
    },
    done() {
      if (on && shown) process.stderr.write('\r\x1b[K');
    },
  };
}

/** "1 store path", "2 store paths": a count with its noun (plural: the noun + s unless given). */
export function count(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}

/** "3 s left", "2 min left": an estimate from the rate so far; empty until there is a rate. */
export function eta(done: number, total: number, seconds: number): string {
  if (!(done > 0) || !(seconds > 0.5) || !(total > done)) return '';
  const left = ((total - done) / done) * seconds;
  return left < 90 ? `, ${Math.ceil(left)} s left` : left < 5400 ? `, ${Math.round(left / 60)} min left` : `, ${(left / 3600).toFixed(1)} h left`;
}

/** Bytes per second so far, as "12 MiB/s" (empty before half a second has passed). */
export function rate(bytes: number, seconds: number): string {
  return seconds > 0.5 ? `, ${fmtBytes(bytes / seconds)}/s` : '';
}

export function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? Math.round(v) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${u[i]}`;
}
