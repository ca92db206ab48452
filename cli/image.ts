/**
 * `miq export … --oci DIR | --tar FILE`: a container image or a root filesystem tarball of a
 * profile generation (`--profile P [--generation N]`) or of a store path. The export command
 * (cli/inspect.ts) hands these options here; the writer is image/oci.ts.
 */
import type { Command } from 'commander';
import type { Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import type { Id } from '../store/ids.js';
import * as P from '../store/profiles.js';
import { resolveStoreArg } from '../store/resolve.js';
import { exportOci, exportRootfsTar } from '../image/oci.js';
import { fmtBytes, globals, printJson, withStore } from './context.js';

export interface ImageOptions { profile?: string; generation?: string; oci?: string; tar?: string; tag?: string; json?: boolean }

export function addImageOptions(c: Command): Command {
  return c
    .option('--profile <name>', 'export a generation of this profile (the current one unless --generation)')
    .option('--generation <n>', 'with --profile: this generation number')
    .option('--oci <dir>', 'write an OCI image layout (one layer) into this new or empty directory')
    .option('--tar <file>', 'write a root filesystem tarball to this new file')
    .option('--tag <tag>', 'with --oci: the image reference name in index.json (default "latest")');
}

/** True when the options ask for an image; then the export is done here. */
export function wantsImage(o: ImageOptions): boolean {
  return o.oci !== undefined || o.tar !== undefined || o.profile !== undefined;
}

async function sourceTree(s: Store, arg: string | undefined, o: ImageOptions): Promise<{ tree: Id; what: string; labels: Record<string, string> }> {
  if (o.profile !== undefined) {
    if (arg !== undefined) throw new MiqError('MIQ_BAD_INPUT', `give either a store path or --profile, not both (got "${arg}" and --profile ${o.profile})`);
    let g: P.GenerationRecord | undefined;
    if (o.generation !== undefined) {
      const n = Number(o.generation);
      if (!Number.isInteger(n) || n < 1) throw new MiqError('MIQ_BAD_INPUT', `--generation must be a whole number from 1, got "${o.generation}"`);
      g = await P.getGeneration(s, o.profile, n);
      if (!g) throw new MiqError('MIQ_NOT_FOUND', `profile ${o.profile} has no generation ${n}; see \`miq profile list ${o.profile}\``);
    } else {
      g = await P.current(s, o.profile);
      if (!g) throw new MiqError('MIQ_NOT_FOUND', `profile ${o.profile} has no current generation; make one with \`miq profile switch ${o.profile} PATH…\``);
    }
    return { tree: g.tree, what: `${o.profile} generation ${g.generation}`, labels: { 'org.miq.profile': o.profile, 'org.miq.generation': String(g.generation), 'org.miq.tree': g.tree } };
  }
  if (o.generation !== undefined) throw new MiqError('MIQ_BAD_INPUT', '--generation needs --profile');
  if (arg === undefined) throw new MiqError('MIQ_BAD_INPUT', 'give a store path or --profile NAME to export');
  const r = await resolveStoreArg(s, arg);
  if (r.kind !== 'dir') throw new MiqError('MIQ_BAD_INPUT', `${arg} is not a directory; an image needs a tree`);
  return { tree: r.tree, what: arg, labels: { 'org.miq.tree': r.tree } };
}

export async function exportImage(cmd: Command, arg: string | undefined, dest: string | undefined, o: ImageOptions): Promise<void> {
  if (dest !== undefined) throw new MiqError('MIQ_BAD_INPUT', `with --oci/--tar/--profile give no destination argument (got "${dest}")`);
  if (o.oci === undefined && o.tar === undefined) throw new MiqError('MIQ_BAD_INPUT', '--profile exports need --oci DIR or --tar FILE');
  if (o.oci !== undefined && o.tar !== undefined) throw new MiqError('MIQ_BAD_INPUT', 'give one of --oci and --tar');
  if (o.tag !== undefined && o.oci === undefined) throw new MiqError('MIQ_BAD_INPUT', '--tag needs --oci');
  const out = await withStore(globals(cmd), async (s) => {
    const src = await sourceTree(s, arg, o);
    if (o.oci !== undefined) return { kind: 'oci' as const, what: src.what, ...(await exportOci(s, src.tree, o.oci, { tag: o.tag, labels: src.labels })) };
    return { kind: 'tar' as const, what: src.what, ...(await exportRootfsTar(s, src.tree, o.tar!)) };
  });
  if (o.json) return printJson(out);
  if (out.kind === 'oci') process.stdout.write(`exported ${out.what} as an OCI image in ${out.dir} (${out.tag}): manifest ${out.manifest}, layer ${fmtBytes(out.size)}, ${out.files} files\n`);
  else process.stdout.write(`exported ${out.what} as a root filesystem tarball ${out.file}: ${fmtBytes(out.size)}, ${out.files} files, sha256 ${out.sha256}\n`);
}
