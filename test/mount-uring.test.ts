/**
 * FUSE over io_uring (MIQ_MOUNT_URING=1; native/miqfuse.c "FUSE over io_uring"): the libfuse 3
 * addon's suite (test/mount-fuse3: content, 1 MiB reads, replies from JS and from the read
 * threads, damaged chunks answered EIO, held READs, unmount with a shell inside) and the store
 * mount's (test/mount) run again in child processes with their requests taken from io_uring
 * queues; mount-fuse3 checks that requests did come from the queues. Skipped unless root, the
 * addon built, and the kernel allowing it: /sys/module/fuse/parameters/enable_uring is N by
 * default (as root, `echo Y >` it to run this, and `echo N >` after).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadFuse3 } from '../mount/fuse3.js';
import { uringAllowed } from './helpers/fuse.js';

const here = dirname(fileURLToPath(import.meta.url));
const allowed = uringAllowed();
const skip = process.getuid?.() !== 0 ? 'needs root (mounts)'
  : !loadFuse3().native ? `addon not built: ${loadFuse3().error}`
  : !allowed ? 'the kernel does not allow FUSE over io_uring: /sys/module/fuse/parameters/enable_uring is not Y (needs kernel 6.14+; as root echo Y > it to run this)'
  : false;

const run = (file: string): Promise<{ code: number | null; out: string }> =>
  new Promise((resolve) => {
    // A test run of its own (without the runner's marker, node --test would not run the file).
    const env: NodeJS.ProcessEnv = { ...process.env, MIQ_MOUNT_URING: '1' };
    delete env.NODE_TEST_CONTEXT;
    const c = spawn(process.execPath, ['--test', '--test-reporter=tap', join(here, file)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('close', (code) => resolve({ code, out }));
  });

for (const file of ['mount-fuse3.test.js', 'mount.test.js']) {
  test(`${file} passes with MIQ_MOUNT_URING=1`, { skip, timeout: 600_000 }, async () => {
    const r = await run(file);
    const tail = r.out.split('\n').filter((l) => /^not ok|^# (pass|fail|skipped)/.test(l.trim())).join('\n');
    assert.equal(r.code, 0, `${file} under io_uring:\n${tail}\n${r.out.slice(-4000)}`);
    assert.match(r.out, /# fail 0/);
    if (file === 'mount-fuse3.test.js') {
      const line = r.out.split('\n').find((l) => /^\s*ok \d+ - requests come from io_uring queues/.test(l));
      assert.ok(line && !line.includes('# SKIP'), `the check that requests came from the queues ran: ${line}`);
    }
  });
}
