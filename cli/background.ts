/**
 * `miq mount DIR --background`: the same command in a detached child, its output in a log under
 * the store; this process returns once the child serves (or reports why it could not).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MiqError, privateDir, runDirOf } from '../store/index.js';

export async function background(storeDir: string, dir: string, json: boolean): Promise<void> {
  const log = join(await privateDir(runDirOf(storeDir)), `mount-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}.log`);
  const args = process.argv.slice(1).filter((a) => a !== '--background');
  if (!args.includes('--json')) args.push('--json');
  const fd = openSync(log, 'w', 0o600);
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  const t0 = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const text = await readFile(log, 'utf8').catch(() => '');
    const line = text.split('\n').find((l) => l.startsWith('{') && l.includes('"mounted":true'));
    if (line) {
      child.unref();
      if (json) process.stdout.write(`${line}\n`);
      else process.stderr.write(`miq: serving ${dir} in the background (pid ${child.pid}, log ${log}); stop it with \`miq umount ${dir}\`\n`);
      return;
    }
    if (exited !== undefined) {
      const why = text.split('\n').filter((l) => l.startsWith('miq: ')).pop()?.slice(5) ?? `it exited with status ${exited}; see ${log}`;
      const code = (/"code":"(MIQ_[A-Z_]+)"/.exec(text)?.[1] ?? 'MIQ_IO') as 'MIQ_IO';
      throw new MiqError(code, why);
    }
    if (Date.now() - t0 > 60_000) {
      child.kill('SIGTERM');
      throw new MiqError('MIQ_TIMEOUT', `the background mount of ${dir} did not start within 60 s; see ${log}`);
    }
  }
}
