/**
 * The file-level dedup baseline: what hard-link dedup (`nix-store --optimise`, OSTree, moss) can
 * reach. One object per unique file content, named by its BLAKE3, each compressed on its own with
 * zstd level 3 (kept raw when that is not smaller). Symlinks and directories cost nothing here,
 * as in those stores where they live in (small) tree metadata.
 *
 * Usage: `node dist/benchmarks/filelevel.js DIR REPO` — adds DIR to the object store REPO.
 * Single-threaded on purpose: it is a byte-count baseline, not a speed anchor.
 */
import { blake3 } from '@napi-rs/blake-hash';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compress } from 'zstd-napi';

export async function addTree(dir: string, repo: string): Promise<{ files: number; newFiles: number; newBytes: number }> {
  const objects = join(repo, 'objects');
  await mkdir(objects, { recursive: true });
  let files = 0;
  let newFiles = 0;
  let newBytes = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) {
        files++;
        const data = await readFile(p);
        const id = blake3(data).toString('hex');
        const sub = join(objects, id.slice(0, 2));
        const obj = join(sub, id);
        if (existsSync(obj)) continue;
        const z = compress(data, { compressionLevel: 3 });
        const body = z.length < data.length ? z : data;
        await mkdir(sub, { recursive: true });
        await writeFile(`${obj}.tmp`, body);
        await rename(`${obj}.tmp`, obj);
        newFiles++;
        newBytes += body.length;
      }
    }
  }
  return { files, newFiles, newBytes };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, repo] = process.argv.slice(2);
  if (!dir || !repo) {
    process.stderr.write('usage: filelevel.js DIR REPO\n');
    process.exit(2);
  }
  addTree(dir, repo).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
