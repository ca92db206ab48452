/**
 * `miq run` and `miq shell`: a program with a profile's generation as its /usr, in bubblewrap.
 * The root is built around it: usr-merge links /bin /sbin /lib /lib64 -> usr/…, fresh /proc,
 * /dev and /tmp, the host's /etc read-only (users, resolver, certificates), the current directory
 * and $HOME bound read-write, and the store at /miq/store when asked (--store-view).
 *
 * The generation comes from a running `miq mount` of this store when there is one (its immutable
 * profiles/<P>/<N> directory, so a switch during the run does not change the program's files
 * under it); otherwise this process mounts the store privately under <store>/run for the length
 * of the command. The serving process must never block on its own mount: everything here that
 * touches the mount is asynchronous, and the program runs in a child.
 */
import { spawn } from 'node:child_process';
import { access, mkdir, rmdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { connectControl } from '../mount/client.js';
import type { MountStatus } from '../mount/daemon.js';
import type { Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { openStore } from '../store/open.js';
import { privateDir, runDirOf } from '../store/private-dir.js';
import * as P from '../store/profiles.js';
import { globals, storeDir, withStore, type GlobalOptions } from './context.js';

interface RunOptions { profile: string; storeView?: boolean }

/** The usr-merge links of a Debian 12 style root; /usr/lib64 may be absent (then the link dangles, harmlessly). */
const USR_LINKS = ['bin', 'sbin', 'lib', 'lib64'];

/** The current generation, and whether its tree is shaped as a root (usr/ inside, as `miq install` makes) or as a /usr (`ingest --usrmerge`). */
async function generationOf(store: Store, profile: string): Promise<{ n: number; sub: string }> {
  const g = await P.current(store, P.checkProfileName(profile));
  if (!g) throw new MiqError('MIQ_NOT_FOUND', `profile ${profile} has no current generation; make one with \`miq profile switch ${profile} PATH…\``);
  const top = await store.getTree(g.tree);
  // A root-shaped generation (usr/ inside) gives its usr/; a /usr-shaped one is the /usr itself.
  const rooted = top?.entries.some((e) => e.name.toString() === 'usr' && e.kind === 'dir') ?? false;
  return { n: g.generation, sub: rooted ? 'usr' : '' };
}

/** Where the generation is mounted, and how to let go of it. */
async function viewFor(g: GlobalOptions, o: RunOptions): Promise<{ usr: string; store: string; release(): Promise<void> }> {
  const dir = storeDir(g);
  const client = await connectControl(dir);
  if (client) {
    try {
      const status = await client.call<MountStatus>('mount.status');
      const { n, sub } = await withStore(g, (s) => generationOf(s, o.profile));
      return { usr: join(status.dir, 'profiles', o.profile, String(n), sub), store: join(status.dir, 'store'), release: async () => {} };
    } finally {
      client.close();
    }
  }
  if (process.getuid?.() !== 0) throw new MiqError('MIQ_BAD_INPUT', `no miq mount serves ${dir}, and only root can start a private one: start \`miq mount DIR\` (as root) and run again`);
  const store = await openStore(dir);
  const { startMount } = await import('../mount/daemon.js');
  const mnt = join(await privateDir(runDirOf(dir)), `run-${process.pid}`);
  try {
    const { n, sub } = await generationOf(store, o.profile);
    await mkdir(mnt, { recursive: true });
    const h = await startMount(store, mnt, { profile: o.profile, log: (l) => process.stderr.write(`${l}\n`) });
    return {
      usr: join(mnt, 'profiles', o.profile, String(n), sub),
      store: join(mnt, 'store'),
      release: async () => {
        await h.close();
        await store.close();
        await rmdir(mnt).catch(() => {});
      },
    };
  } catch (e) {
    await store.close();
    await rmdir(mnt).catch(() => {});
    throw e;
  }
}

export function bwrapArgs(usr: string, store: string | undefined, cmd: readonly string[], env: { cwd: string; home: string | undefined }): string[] {
  const a = ['--die-with-parent', '--unshare-pid', '--ro-bind', usr, '/usr'];
  for (const l of USR_LINKS) a.push('--symlink', `usr/${l}`, `/${l}`);
  a.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--ro-bind', '/etc', '/etc');
  if (store) a.push('--ro-bind', store, '/miq/store');
  if (env.home) a.push('--bind', env.home, env.home);
  a.push('--bind', env.cwd, env.cwd, '--chdir', env.cwd);
  a.push('--setenv', 'PATH', '/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin');
  return [...a, '--', ...cmd];
}

async function runIn(cmd: Command, o: RunOptions, program: (usr: string) => Promise<string[]>, extraEnv: Record<string, string> = {}): Promise<void> {
  const g = globals(cmd);
  const view = await viewFor(g, o);
  // Ctrl-C belongs to the program (it shares our terminal and process group); this process stays
  // to unmount its private view after the program ends.
  const ignore = (): void => {};
  process.on('SIGINT', ignore);
  process.on('SIGTERM', ignore);
  try {
    const argv = await program(view.usr);
    const home = process.env.HOME && (await access(process.env.HOME).then(() => true, () => false)) ? process.env.HOME : undefined;
    const args = bwrapArgs(view.usr, o.storeView ? view.store : undefined, argv, { cwd: process.cwd(), home: home ?? (homedir() || undefined) });
    const code = await new Promise<number>((resolve, reject) => {
      const c = spawn('bwrap', args, { stdio: 'inherit', env: { ...process.env, ...extraEnv } });
      c.on('error', (e) => reject(new MiqError('MIQ_BAD_INPUT', `cannot start bubblewrap (bwrap): ${e.message}; install it (apt-get install bubblewrap)`)));
      c.on('exit', (c2, sig) => resolve(c2 ?? 128 + (sig ? ({ SIGINT: 2, SIGTERM: 15, SIGKILL: 9 } as Record<string, number>)[sig] ?? 1 : 1)));
    });
    process.exitCode = code;
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGTERM', ignore);
    await view.release();
  }
}

export function register(program: Command): void {
  program
    .command('run')
    .description("run a program with a profile's current generation as /usr (bubblewrap; usr-merge links, fresh /proc /dev /tmp, host /etc, cwd and $HOME bound)")
    .option('--profile <name>', 'profile whose current generation is /usr', 'system')
    .option('--store-view', 'also show the store at /miq/store')
    .argument('<cmd...>', 'program and its arguments, after `--`')
    .addHelpText('after', `
Examples:
  miq run --profile system -- python3 -c 'print(1)'
  miq run --store-view -- ls /miq/store

Uses a running \`miq mount\` of the store, or (as root) mounts it privately for the command.
The generation is either shaped as a /usr (Debian packages ingested with --usrmerge) or as a
root with usr/ inside (as \`miq install\` makes it): then its usr/ is the /usr.
The exit status is the program's.`)
    .action(async (argv: string[], o: RunOptions, cmd: Command) => {
      await runIn(cmd, o, async () => argv);
    });

  program
    .command('shell')
    .description("an interactive shell in a profile's current generation (as `miq run`): its bash, else sh")
    .argument('[profile]', 'profile', 'system')
    .option('--store-view', 'also show the store at /miq/store')
    .action(async (profile: string, o: { storeView?: boolean }, cmd: Command) => {
      await runIn(cmd, { profile, storeView: o.storeView }, async (usr) => {
        for (const sh of ['bash', 'sh']) if (await access(join(usr, 'bin', sh)).then(() => true, () => false)) return [`/usr/bin/${sh}`];
        throw new MiqError('MIQ_NOT_FOUND', `profile ${profile} has no shell (neither bin/bash nor bin/sh); add one, e.g. a bash package ingested with --usrmerge`);
      }, { PS1: `[miq ${profile}] \\w\\$ `, SHELL: '/usr/bin/bash' });
    });
}
