/** `mkdir -p` without `recursive: true`, which spins forever on some pseudo file systems (a
 * destination under /proc never returns): one component at a time, errors as they come. */
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function mkdirp(dir: string, mode?: number): Promise<void> {
  try {
    await mkdir(dir, mode === undefined ? undefined : { mode });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error(`${dir} exists and is not a directory`), { code: 'ENOTDIR' });
      return;
    }
    if (code !== 'ENOENT' || dirname(dir) === dir) throw e;
    await mkdirp(dirname(dir), mode);
    await mkdir(dir, mode === undefined ? undefined : { mode }).catch((e2: NodeJS.ErrnoException) => { if (e2.code !== 'EEXIST') throw e2; });
  }
}
