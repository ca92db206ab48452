import type { Command } from 'commander';
import { MiqError } from '../store/errors.js';
import { exportFile, exportTree } from '../store/export.js';
import { resolveStoreArg } from '../store/resolve.js';
import { fmtBytes, globals, printJson, withStore } from './context.js';
import { addImageOptions, exportImage, wantsImage, type ImageOptions } from './image.js';

const nameStr = (b: Buffer): string => b.toString();

export function register(program: Command): void {
  program
    .command('paths')
    .description('list store paths')
    .option('--json', 'one JSON array')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const recs = await withStore(globals(cmd), (s) => s.listStorePaths());
      if (o.json) printJson(recs.map((r) => ({ path: r.path, name: r.name, tree: r.tree, size: r.size, files: r.files, references: r.references })));
      else for (const r of recs) process.stdout.write(`${r.path}\t${fmtBytes(r.size)}\t${r.files} files\n`);
    });

  program
    .command('ls')
    .description('list a directory of a store path')
    .argument('<path>', 'STORE-PATH[/SUB/DIR]')
    .option('--json', 'one JSON array')
    .action(async (arg: string, o: { json?: boolean }, cmd: Command) => {
      const rows = await withStore(globals(cmd), async (s) => {
        const r = await resolveStoreArg(s, arg);
        if (r.kind !== 'dir') return [{ kind: r.kind, size: r.size, name: r.sub.split('/').pop() ?? r.record.path, target: r.kind === 'symlink' ? r.target.toString() : undefined, id: r.kind === 'symlink' ? undefined : r.id }];
        const t = await s.getTree(r.tree);
        if (!t) throw new MiqError('MIQ_MISSING', `tree ${r.tree} is missing; run \`miq verify\``);
        return t.entries.map((e) => ({ kind: e.kind, size: e.size, name: nameStr(e.name), target: e.target?.toString(), id: e.id }));
      });
      if (o.json) printJson(rows);
      else for (const e of rows) process.stdout.write(`${e.kind.padEnd(7)} ${String(e.size).padStart(12)}  ${e.name}${e.kind === 'dir' ? '/' : ''}${e.target !== undefined ? ` -> ${e.target}` : ''}\n`);
    });

  program
    .command('cat')
    .description('write a file of a store path to stdout (every chunk verified)')
    .argument('<path>', 'STORE-PATH/FILE')
    .action(async (arg: string, _o: unknown, cmd: Command) => {
      await withStore(globals(cmd), async (s) => {
        const r = await resolveStoreArg(s, arg);
        if (r.kind === 'dir') throw new MiqError('MIQ_BAD_INPUT', `${arg} is a directory; use \`miq ls\``);
        if (r.kind === 'symlink') throw new MiqError('MIQ_BAD_INPUT', `${arg} is a symlink to ${r.target.toString()}`);
        const rec = await s.getFile(r.id);
        if (!rec) throw new MiqError('MIQ_MISSING', `file ${r.id} is missing; run \`miq verify\``);
        let pos = 0;
        for (const c of rec.chunks) {
          const b = await s.readFile(rec, pos, c.length);
          pos += b.length;
          if (!process.stdout.write(b)) await new Promise((res) => process.stdout.once('drain', res));
        }
      });
    });

  addImageOptions(program
    .command('export')
    .description('materialise a store path (or a part of it) as a directory; or a profile generation or store path as an OCI image (--oci) or tarball (--tar)')
    .argument('[path]', 'STORE-PATH[/SUB]')
    .argument('[dest]', 'new or empty directory (or file path for a single file)'))
    .option('--force', 'replace an existing file (a single-file export)')
    .option('--json', 'print a JSON summary')
    .action(async (arg: string | undefined, dest: string | undefined, o: ImageOptions & { json?: boolean; force?: boolean }, cmd: Command) => {
      if (wantsImage(o)) return exportImage(cmd, arg, dest, o);
      if (arg === undefined || dest === undefined) throw new MiqError('MIQ_BAD_INPUT', 'usage: miq export STORE-PATH[/SUB] DEST, or miq export --profile NAME --oci DIR');
      const st = await withStore(globals(cmd), async (s) => {
        const r = await resolveStoreArg(s, arg);
        if (r.kind === 'dir') return exportTree(s, r.tree, dest);
        if (r.kind === 'symlink') throw new MiqError('MIQ_BAD_INPUT', `${arg} is a symlink to ${r.target.toString()}`);
        const bytes = await exportFile(s, r.id, dest, r.kind === 'exe', { force: o.force === true });
        return { files: 1, dirs: 0, symlinks: 0, bytes };
      });
      if (o.json) printJson(st);
      else process.stdout.write(`exported ${st.files} files, ${st.symlinks} symlinks, ${st.dirs} directories, ${fmtBytes(st.bytes)} to ${dest}\n`);
    });
}
