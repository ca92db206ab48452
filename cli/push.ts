import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { MiqError, ioError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import type { Store } from '../store/api.js';
import { current } from '../store/profiles.js';
import { loadSigningKey, publishRepo, push, type PushProfile } from '../store/remote/index.js';
import { requireRepo } from '../packages/index.js';
import { decodeHints } from '../store/remote/layout.js';
import { resolveStorePath } from '../store/resolve.js';
import { count, fmtBytes, globals, keyFile, printJson, progressLine, withStore } from './context.js';

/** The current generation of a local profile. */
async function currentGeneration(store: Store, name: string): Promise<PushProfile> {
  const g = await current(store, name);
  if (!g) throw new MiqError('MIQ_NOT_FOUND', `profile ${name} has no current generation; \`miq profile list\` shows the profiles`);
  return { name, generation: g.generation, paths: [...g.paths], tree: g.tree as Id, priorities: g.priorities };
}

export function register(program: Command): void {
  program
    .command('push')
    .description('write the missing part of a closure to a remote directory (serve it with any static HTTP server)')
    .argument('<dest>', 'destination directory or file:// URL')
    .argument('[paths...]', 'store paths to push with their references')
    .option('--profile <name>', "also push a profile's current generation and a signed pointer to it")
    .option('--sign-key <file>', 'secret key: NAME from `miq key generate NAME` (<store>/keys/NAME.key) or a file (clients accept only signed records)')
    .option('--no-fsync', 'skip fsync per file (faster; a crash may leave torn files that clients reject)')
    .option('--hints <file>', 'with --profile: publish a prefetch list recorded by `miq mount --record-hints` for its current generation')
    .option('--no-bundles', "skip the bundles of each directory's small files and the tree packs (lazy mounts then need a request per small file and per directory)")
    .option('--repo <name>', 'also publish this package repository: its verified index and a signed pointer (clients: `miq repo pull NAME --remote URL`)')
    .option('--json', 'print one JSON object')
    .action(async (dest: string, paths: string[], o: { profile?: string; signKey?: string; fsync: boolean; bundles: boolean; hints?: string; repo?: string; json?: boolean }, cmd: Command) => {
      const g = { ...globals(cmd), json: o.json };
      const key = o.signKey ? loadSigningKey(keyFile(g, o.signKey, '.key')) : undefined;
      if (!key) process.stderr.write('miq: warning: pushing without --sign-key; clients will refuse these records until they are signed\n');
      const hints = o.hints ? await readFile(o.hints).catch((e: unknown) => { throw ioError(e, 'cannot read the hints file', o.hints!); }) : undefined;
      if (hints) {
        try {
          decodeHints(hints, o.hints!);
        } catch (e) {
          throw new MiqError('MIQ_BAD_INPUT', `${(e as Error).message}; write one with \`miq mount DIR --remote URL --record-hints ${o.hints}\``);
        }
        if (!o.profile) throw new MiqError('MIQ_BAD_INPUT', '--hints belongs to a profile: add --profile NAME');
      }
      if (o.repo && !key) throw new MiqError('MIQ_BAD_INPUT', '--repo needs --sign-key: clients accept only a signed repository pointer');
      let repo: { index: string; state: Record<string, unknown> } | undefined;
      const r = await withStore(g, async (store) => {
        const profile = o.profile ? await currentGeneration(store, o.profile) : undefined;
        paths = await Promise.all(paths.map(async (p) => (await resolveStorePath(store, p)).path));
        if (o.repo) {
          const st = await requireRepo(store, o.repo);
          if (!st.index) throw new MiqError('MIQ_NOT_FOUND', `repository ${o.repo} has no index yet; run \`miq repo update ${o.repo}\` first`);
          repo = { index: st.index, state: st as unknown as Record<string, unknown> };
          paths.push(st.index);
        }
        const bar = progressLine(g);
        try {
          return await push(store, dest, {
            paths, profile, key, durable: o.fsync, bundles: o.bundles, hints,
            onProgress: (p) => bar.update(`push: ${p.paths} of ${count(p.closure, 'store path')}, ${count(p.chunks, 'chunk')}, ${fmtBytes(p.bytes)}`),
          });
        } finally {
          bar.done();
        }
      });
      const published = repo ? { repo: o.repo!, index: repo.index, ...(await publishRepo(dest, o.repo!, repo.index, repo.state, key!, o.fsync)) } : undefined;
      if (o.json) return printJson(published ? { ...r, repo: published } : r);
      if (published) process.stdout.write(`repository ${published.repo}: index ${published.index}, pointer sequence ${published.sequence}${published.written ? '' : ' (unchanged)'}\n`);
      process.stdout.write(`${count(r.closure, 'store path')} in the closure, ${r.pathsWritten.length} new; ${count(r.chunksWritten, 'chunk')}, ${count(r.objectsWritten, 'object')}, ${count(r.bundlesWritten, 'bundle')} and ${count(r.treePacksWritten, 'tree pack')} written, ${fmtBytes(r.bytesWritten)}\n`);
      if (r.hintsWritten !== undefined) process.stdout.write(`prefetch list: ${r.hintsWritten} chunk ids\n`);
      if (r.pointer) process.stdout.write(`profile ${r.pointer.profile}: pointer sequence ${r.pointer.sequence}${r.pointer.written ? '' : ' (unchanged)'}\n`);
    });
}
