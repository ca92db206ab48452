import type { Command } from 'commander';
import { userInfo } from 'node:os';
import type { Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { controlOf, withStore } from '../mount/client.js';
import * as P from '../store/profiles.js';
import { resolveStorePath } from '../store/resolve.js';
import { count, globals, printJson, storeDir, trustedKeyFiles } from './context.js';
import { parseCount } from './args.js';
import { openRemoteFor, rememberRemote, rememberedRemote } from './lazy.js';
import { layeredStore, pullProfile, type PullResult } from '../store/remote/index.js';

type G = { json?: boolean };

/** Runs a profile operation in the serving mount if there is one, else on the store directly. */
async function op<T>(cmd: Command, name: string, args: Record<string, unknown>, local: (s: Store) => Promise<T>): Promise<T> {
  return withStore(storeDir(globals(cmd)), async (s) => {
    const c = controlOf(s);
    return c ? c.call<T>(`profile.${name}`, args) : local(s);
  });
}

const intArg = (v: string, what: string): number => parseCount(v, what);
const parseDays = (v: string): number => {
  if (!/^\d{1,6}(?:\.\d{1,6})?d?$/.test(v.trim())) throw new MiqError('MIQ_BAD_INPUT', `--older-than "${v}" must be a number of days (e.g. 30 or 30d)`);
  return Number(v.trim().replace(/d$/, ''));
};

async function members(cmd: Command, paths: string[], priority: string | undefined): Promise<P.Member[]> {
  const prio = priority === undefined ? undefined : intArg(priority, '--priority');
  // Accept unique prefixes and bare names as other commands do.
  return withStore(storeDir(globals(cmd)), async (s) => {
    const out: P.Member[] = [];
    for (const p of paths) out.push({ path: (await resolveStorePath(s, p)).path, priority: prio });
    return out;
  });
}

function printChange(r: P.ChangeResult, o: G): void {
  if (o.json) return printJson(r);
  const was = r.previous === undefined ? '' : ` (was ${r.previous})`;
  process.stdout.write(`${r.profile}: ${r.reused ? 'now at' : 'created'} generation ${r.generation}${was}: ${count(r.paths.length, 'store path')}, tree ${r.tree.slice(0, 16)}…\n`);
}

export function register(program: Command): void {
  const prof = program.command('profile').description('profiles: named, numbered generations of merged store paths');

  prof.command('switch')
    .description('make a new generation with exactly these store paths, and make it current')
    .argument('<name>', 'profile').argument('<paths...>', 'store paths')
    .option('--priority <n>', 'priority of these paths in conflicts (lower wins; default 5)')
    .option('--json', 'one JSON object')
    .action(async (name: string, paths: string[], o: G & { priority?: string }, cmd: Command) => {
      const m = await members(cmd, paths, o.priority);
      printChange(await op(cmd, 'switch', { profile: name, members: m }, (s) => P.switchProfile(s, name, m)), o);
    });

  prof.command('add')
    .description('a new generation: the current one plus these store paths')
    .argument('<name>', 'profile').argument('<paths...>', 'store paths')
    .option('--priority <n>', 'priority of these paths in conflicts (lower wins; default 5)')
    .option('--json', 'one JSON object')
    .action(async (name: string, paths: string[], o: G & { priority?: string }, cmd: Command) => {
      const m = await members(cmd, paths, o.priority);
      printChange(await op(cmd, 'add', { profile: name, members: m }, (s) => P.addToProfile(s, name, m)), o);
    });

  prof.command('remove')
    .description('a new generation: the current one without these store paths')
    .argument('<name>', 'profile').argument('<paths...>', 'store paths')
    .option('--json', 'one JSON object')
    .action(async (name: string, paths: string[], o: G, cmd: Command) => {
      const ps = (await members(cmd, paths, undefined)).map((m) => m.path);
      printChange(await op(cmd, 'remove', { profile: name, paths: ps }, (s) => P.removeFromProfile(s, name, ps)), o);
    });

  prof.command('rollback')
    .description('point the profile at the previous generation (or --to N)')
    .argument('<name>', 'profile')
    .option('--to <n>', 'generation number')
    .option('--json', 'one JSON object')
    .action(async (name: string, o: G & { to?: string }, cmd: Command) => {
      const to = o.to === undefined ? undefined : intArg(o.to, '--to');
      const r = await op(cmd, 'rollback', { profile: name, to }, (s) => P.rollback(s, name, to));
      printChange(r, o);
      // As in Nix, rollback moves to the generation before the current one; a second rollback
      // does not undo the first. Say so, and give the way back.
      if (!o.json && r.previous !== undefined && r.previous !== r.generation) {
        process.stdout.write(`(another rollback goes further back, to the generation before ${r.generation}; \`miq profile rollback ${name} --to ${r.previous}\` returns to ${r.previous}; \`miq profile generations ${name}\` lists them all)\n`);
      }
    });

  prof.command('pull')
    .description("make the remote's signed pointer of a profile the current generation (an atomic switch)")
    .argument('<name>', 'profile')
    .option('--remote <url>', 'remote (default: the one this store was last mounted from)')
    .option('--proxy <url>', 'fetch through this HTTP proxy (default: $http_proxy / $https_proxy, minus $no_proxy)')
    .option('--trusted-key <key>', 'NAME:BASE64, a .pub file, or NAME of <store>/keys/NAME.pub; repeatable (also read: <store>/trusted-keys)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--json', 'one JSON object')
    .action(async (name: string, o: G & { remote?: string; trustedKey: string[]; proxy?: string }, cmd: Command) => {
      const dir = storeDir(globals(cmd));
      o.trustedKey = trustedKeyFiles(globals(cmd), o.trustedKey); // NAME of <store>/keys/NAME.pub too
      const r = await withStore(dir, async (s): Promise<PullResult> => {
        // Without --remote: the remote this store is (was) mounted from, with the keys given there.
        const known = o.remote ? { url: o.remote, trustedKeys: [] as string[] } : await rememberedRemote(s);
        if (o.remote) await rememberRemote(s, o.remote, o.trustedKey);
        const remote = await openRemoteFor(dir, known.url, [...o.trustedKey, ...known.trustedKeys], undefined, false, o.proxy);
        try {
          // Mounted: the serving process switches (its layered store resolves the new paths).
          const c = controlOf(s);
          return await pullProfile(layeredStore(s, remote), remote, name, c ? (w) => c.call<P.ChangeResult>('profile.switchTo', w) : undefined);
        } finally {
          await remote.close();
        }
      });
      if (o.json) return printJson(r);
      process.stdout.write(r.changed
        ? `${name}: generation ${r.generation} (was ${r.previous ?? 'none'}) from the remote's sequence ${r.sequence}${r.stale ? ' (remote unreachable: last verified pointer)' : ''}\n`
        : `${name}: already at the remote's sequence ${r.sequence} (generation ${r.generation})\n`);
    });

  prof.command('list')
    .description('list profiles')
    .option('--json', 'one JSON array')
    .action(async (o: G, cmd: Command) => {
      const r = await op(cmd, 'list', {}, (s) => P.listProfiles(s));
      if (o.json) return printJson(r);
      for (const p of r) process.stdout.write(`${p.name}\tgeneration ${p.current ?? '-'}\t(${p.generations} kept)\n`);
    });

  prof.command('generations')
    .description('list the generations of a profile')
    .argument('<name>', 'profile')
    .option('--json', 'one JSON object')
    .action(async (name: string, o: G, cmd: Command) => {
      const r = await op(cmd, 'generations', { profile: name }, async (s) => ({ current: await P.currentNumber(s, name), generations: await P.listGenerations(s, name) }));
      if (r.generations.length === 0) throw new MiqError('MIQ_NOT_FOUND', `profile ${name} has no generations; \`miq profile list\` lists profiles`);
      if (o.json) return printJson(r);
      for (const g of r.generations) process.stdout.write(`${String(g.generation).padStart(5)}${g.generation === r.current ? ' (current)' : '          '}  ${new Date(g.created).toISOString()}  ${g.paths.length} paths  ${g.env}\n`);
    });

  prof.command('delete-generations')
    .description('delete old generations (never the current one); run `miq gc` to free space')
    .argument('<name>', 'profile')
    .option('--older-than <days>', 'delete generations created more than DAYS ago')
    .option('--keep <n>', 'keep the newest N generations')
    .option('--json', 'one JSON object')
    .action(async (name: string, o: G & { olderThan?: string; keep?: string }, cmd: Command) => {
      const args = { profile: name, olderThanDays: o.olderThan === undefined ? undefined : parseDays(o.olderThan), keep: o.keep === undefined ? undefined : intArg(o.keep, '--keep') };
      if (args.olderThanDays !== undefined && !(args.olderThanDays >= 0)) throw new MiqError('MIQ_BAD_INPUT', `--older-than must be a number of days, got "${o.olderThan}"`);
      const r = await op(cmd, 'deleteGenerations', args, (s) => P.deleteGenerations(s, name, args));
      if (o.json) return printJson(r);
      process.stdout.write(`${name}: deleted ${r.deleted.length} generations${r.deleted.length ? ` (${r.deleted.join(', ')})` : ''}; kept ${r.kept.join(', ')}\n`);
    });

  prof.command('diff')
    .description('store paths added, removed and changed between two generations')
    .argument('<name>', 'profile').argument('<a>', 'generation').argument('<b>', 'generation')
    .option('--json', 'one JSON object')
    .action(async (name: string, a: string, b: string, o: G, cmd: Command) => {
      const A = intArg(a, 'generation'), B = intArg(b, 'generation');
      const r = await op(cmd, 'diff', { profile: name, a: A, b: B }, (s) => P.diffGenerations(s, name, A, B));
      if (o.json) return printJson(r);
      for (const p of r.added) process.stdout.write(`+ ${p}\n`);
      for (const p of r.removed) process.stdout.write(`- ${p}\n`);
      for (const c of r.changed) process.stdout.write(`~ ${c.name}: ${c.from} -> ${c.to}\n`);
    });

  // --user: the calling user's own profile NAME, i.e. per-user/<user>/NAME (store/profiles.ts).
  for (const c of prof.commands) {
    if (c.name() === 'list') continue;
    c.option('--user', "act on the calling user's own profile (per-user/USER/NAME)");
    c.hook('preAction', (_t, action) => {
      if (!action.opts().user) return;
      if (action.name() === 'pull') throw new MiqError('MIQ_BAD_INPUT', 'not supported yet: miq profile pull --user (pull into a shared profile as root)');
      action.processedArgs[0] = P.userProfile(userInfo().username, String(action.processedArgs[0]));
    });
  }
}
