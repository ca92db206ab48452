import type { Command } from 'commander';
import { accessSync, constants, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { chooseBackend, startMount, untilSignal } from '../mount/daemon.js';
import { prepareMountpoint } from '../mount/mountinfo.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { REMOTE_URL_KEY } from '../store/remote/index.js';
import { globals, printJson, storeDir } from './context.js';
import { openLazy, type LazyOptions } from './lazy.js';
import { background } from './background.js';
import { parseSeconds, parseSize } from './args.js';

const HELP = `
Serves, until SIGINT or SIGTERM:
  DIR/store/<name>-<hash>/...   every store path, read-only
  DIR/usr/...                   the current generation of --profile (default: system)
  DIR/profiles/<name>/<N>/...   every generation; DIR/profiles/<name>/current -> N

While it runs, other miq commands (profile switch/add/remove/rollback, ingest, ls, cat, gc,
verify, stats) go through its control socket ($store/miq.sock). A mount left by a killed
server ("Transport endpoint is not connected") is cleared by the next \`miq mount\`.

On a real system, mount once at /miq and bind the views into place:
  mkdir -p /miq && miq mount /miq &
  mount --bind /miq/usr /usr          # switches show through the bind
  # or in /etc/fstab, after the miq service has started:
  #   /miq/usr  /usr  none  bind,x-systemd.requires=miq.service  0 0
Store paths then live at /miq/store/<name>-<hash>.
As a service: contrib/miq.service (systemd; SIGTERM unmounts and exits 0). From /etc/fstab:
  ln -s /opt/miq/bin/mount.fuse.miq /sbin/mount.fuse.miq
  /var/lib/miq  /miq  fuse.miq  profile=system  0 0      # then: mount /miq
SIGINT/SIGTERM (or \`umount DIR\`) ends the mount: it is detached at once; programs still inside
(open files, a shell's cwd) are served for MIQ_MOUNT_GRACE_MS (default 2000), then get errors.

Backends: fuse3 (default: miq's libfuse 3 addon, built by npm ci; the kernel caches everything
immutable, a switch drops only the names that changed) or fuse-native (libfuse 2, the fallback
used automatically when the addon is not built; MIQ_FUSE_BACKEND or --backend picks one).

Lazily, from a remote that \`miq push\` wrote (any static HTTP server), with an empty store:
  miq mount /miq --remote https://cache.example/repo --trusted-key NAME:BASE64 [--cache-size 2G]
Records come on lookup and chunks on first read, verified; the disk cache stays under
--cache-size. \`miq profile pull system\` (or --pull-interval) switches to the remote's new pointer.
A prefetch list makes a program's first start fetch in parallel instead of one file at a time:
  miq mount /tmp/m --remote URL --trusted-key K --record-hints app.hints &   # run the program, stop
  miq push /srv/www/miq --profile system --hints app.hints                   # publish it
`;

export function register(program: Command): void {
  program
    .command('mount')
    .description('serve the store, the profile views and generations by FUSE (foreground)')
    .argument('<dir>', 'an empty directory to mount on')
    .option('--profile <name>', 'profile shown at DIR/usr', 'system')
    .option('--cache-size <size>', 'e.g. 512M or 2G, a bare number is MiB: the decompressed-chunk cache in memory (default 128M), or with --remote the disk cache of remote chunks (default 1G)')
    .option('--json', 'print one JSON status line once mounted')
    .option('--debug-fuse', 'trace every FUSE operation (libfuse debug)')
    .option('--backend <name>', 'fuse3 (default when built) or fuse-native (libfuse 2)')
    .option('--remote <url>', 'lazy: store paths, trees and chunks come from this remote on first use (the local store may be empty)')
    .option('--trusted-key <key>', 'with --remote: NAME:BASE64 or a .pub file; repeatable (also read: <store>/trusted-keys)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--pull-interval <seconds>', "with --remote: pull the remote's pointer of --profile this often")
    .option('--users <names>', 'comma-separated users who may use the store through a socket of their own (<store>/users/NAME/miq.sock): their own profiles (--user), ingests, pins')
    .option('--proxy <url>', 'with --remote: fetch through this HTTP proxy (default: $http_proxy / $https_proxy, minus $no_proxy)')
    .option('--no-hints', "with --remote: ignore the remote's prefetch list for the profile")
    .option('--record-hints <file>', 'with --remote: when stopped, write the chunks read (first read first) as a prefetch list for `miq push --hints`')
    .option('--background', 'return once mounted, serving from a detached process (stop it with `miq umount DIR`)')
    .addHelpText('after', HELP)
    .action(async (dir: string, o: { profile: string; cacheSize?: string; json?: boolean; debugFuse?: boolean; backend?: string; users?: string } & LazyOptions, cmd: Command) => {
      // Bad numbers before anything is opened or mounted: they are the cheapest mistake to report.
      const cacheBytes = parseSize(o.cacheSize ?? '128', '--cache-size', { bare: 'M', min: 1 << 20 });
      if (o.pullInterval !== undefined) parseSeconds(o.pullInterval, '--pull-interval');
      const rights = mountRightsProblem();
      if (rights) throw noMountRights(resolve(dir), rights);
      if ((o as { background?: boolean }).background) return background(storeDir(globals(cmd)), resolve(dir), !!o.json);
      // Mountpoint errors (busy, not empty, stale) first: they say more than "store locked".
      const { backend } = chooseBackend(o.backend);
      const pre = await prepareMountpoint(resolve(dir));
      let store: Store = await openStore(storeDir(globals(cmd)));
      if (!o.remote) {
        // A store that was mounted lazily holds generations whose files live on that remote:
        // without it they would all read as EIO. Serve it the same way again.
        const was = await store.getMeta(REMOTE_URL_KEY).catch(() => undefined);
        if (was) {
          const r = JSON.parse(was.toString()) as { url: string; trustedKeys: string[] };
          o.remote = r.url;
          o.trustedKey = [...r.trustedKeys, ...o.trustedKey];
          if (!o.json) process.stderr.write(`miq: this store was mounted from ${r.url}; serving it lazily from there again (--remote URL picks another)\n`);
        }
      }
      if (!o.remote && (o.recordHints || o.pullInterval !== undefined)) {
        await store.close();
        throw new MiqError('MIQ_BAD_INPUT', `${o.recordHints ? '--record-hints' : '--pull-interval'} needs --remote URL (it is about a lazy mount of a remote)`);
      }
      // --remote: --cache-size bounds the on-disk cache of remote chunks (SIZE, bare number = MiB).
      const lazy = o.remote ? await openLazy(store, o, o.cacheSize).catch(async (e: unknown) => { await store.close(); throw e; }) : undefined;
      if (lazy) store = lazy.store;
      try {
        // A read-only store (its index a private copy) cannot hold a control socket, and needs
        // none: nothing can change it, and other commands open it directly, side by side.
        const readOnly = (store as { readOnly?: string }).readOnly;
        const h = await startMount(store, dir, { control: !readOnly, profile: o.profile, cacheBytes: lazy ? undefined : cacheBytes, debug: o.debugFuse, backend, users: o.users ? o.users.split(',').map((u) => u.trim()).filter(Boolean) : [] }).catch((e: unknown) => { throw whyNoMount(dir, e); });
        lazy?.started(h);
        const s = h.status();
        const cleared = [...pre.cleared, ...h.cleared];
        // The handlers go in before the status line goes out: whoever reads that line may send
        // SIGTERM at once, and a SIGTERM that beat the handler killed miq with the mount left up
        // (seen once in a loaded clean-clone run of input-validation.test).
        const stopped = untilSignal(h);
        if (o.json) printJson({ mounted: true, ...s, cleared });
        else {
          for (const c of cleared) process.stderr.write(`miq: cleared a stale mount at ${c}\n`);
          process.stderr.write(`miq: serving ${s.dir} (store ${s.store}, ${s.profile} generation ${s.generation ?? 'none'}); stop with Ctrl-C\n`);
        }
        const sig = await stopped;
        await lazy?.stop();
        if (!o.json) process.stderr.write(sig === 'umount' ? `miq: ${s.dir} was unmounted; stopping\n` : `miq: ${sig}: unmounted ${s.dir}\n`);
      } finally {
        await store.close();
      }
    });
}

/** Why a user other than root cannot mount here, if a reason can be seen before trying (the FUSE
 * library reports it only as "fuse failed", after printing its own line). */
function mountRightsProblem(): string | undefined {
  if (process.geteuid?.() === 0) return undefined;
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return '/dev/fuse is not readable and writable by you';
  }
  const conf = (() => { try { return readFileSync('/etc/fuse.conf', 'utf8'); } catch { return ''; } })();
  if (!/^\s*user_allow_other\b/m.test(conf)) return "miq serves the mount to every user (allow_other), which /etc/fuse.conf allows only root unless it has 'user_allow_other'";
  return undefined;
}

function noMountRights(dir: string, why: string, cause?: unknown): MiqError {
  return new MiqError('MIQ_IO', `permission denied: cannot mount ${dir} as uid ${process.geteuid?.()}: ${why}; run miq mount as root`, { cause, details: { path: dir, errno: 'EPERM' } });
}

function whyNoMount(dir: string, e: unknown): unknown {
  if (e instanceof MiqError || process.geteuid?.() === 0) return e;
  return noMountRights(dir, mountRightsProblem() ?? `the FUSE library said: ${(e as Error)?.message ?? String(e)}`, e);
}
