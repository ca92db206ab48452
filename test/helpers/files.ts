/** Files for the C hash and scan passes' tests: bodies they read, and the ones they give back. */
import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes `bodies` (name -> bytes) into `dir` and returns a task's files: those, then four that
 * a pass must give back (a link to `changed`, a fifo, a missing file, and `changed` announced one
 * byte longer than it is); `nBodies` is where the four start. */
export async function taskFiles(dir: string, bodies: Record<string, Buffer>, changed: string): Promise<{ files: { path: Buffer; size: number }[]; nBodies: number }> {
  await mkdir(dir, { recursive: true });
  for (const [n, b] of Object.entries(bodies)) await writeFile(join(dir, n), b);
  await symlink(changed, join(dir, 'link'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  const files = [
    ...Object.entries(bodies).map(([n, b]) => ({ path: Buffer.from(join(dir, n)), size: b.length })),
    { path: Buffer.from(join(dir, 'link')), size: 4 },
    { path: Buffer.from(join(dir, 'fifo')), size: 0 },
    { path: Buffer.from(join(dir, 'missing')), size: 1 },
    { path: Buffer.from(join(dir, changed)), size: bodies[changed]!.length + 1 },
  ];
  return { files, nBodies: Object.keys(bodies).length };
}
