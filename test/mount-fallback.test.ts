/**
 * The fuse-native (libfuse 2) fallback, as a machine without libfuse 3 would run it: a smaller
 * set of the real mount tests in child processes with MIQ_FUSE_BACKEND=fuse-native (issue 11 §6):
 * contents under store/, usr/ and profiles/, stat, permissions (test -x), misses, switches through
 * the control socket, and the whole lifecycle file (SIGTERM with a file
 * held, a shell inside and a bind of usr; an outside unmount; an fstab line), 3 trials instead of 10.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const MOUNT_TESTS = ['diff -r of every store path', 'stat: normalised', 'permissions: the kernel checks', 'misses are ENOENT', 'the control socket'];

let loads: string | undefined;
try {
  createRequire(import.meta.url)('fuse-native');
} catch (e) {
  loads = `fuse-native does not load here: ${(e as Error).message.split('\n')[0]}`;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  // The child is a test run of its own, not a subtest of this one (node:test marks a child of a
  // test run through NODE_TEST_CONTEXT and would skip its files).
  const base = { ...process.env };
  delete base.NODE_TEST_CONTEXT;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--test', ...args, join(HERE, file)], { env: { ...base, MIQ_FUSE_BACKEND: 'fuse-native', ...env }, timeout: 600_000, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
    });
  });
}

/** The counts and failures, then the run's last lines: a failing hook shows only as the file's
 * "not ok" with 'test failed', its reason further down. */
const summary = (out: string): string => `${out.split('\n').filter((l) => /^# (tests|pass|fail|skipped)|not ok|error:/.test(l)).join('\n')}\n--- last lines of the child run ---\n${out.slice(-6000)}`;

test('fuse-native: the core mount tests', { skip: loads }, async () => {
  const r = await run('mount.test.js', MOUNT_TESTS.map((n) => `--test-name-pattern=${n}`), {});
  assert.equal(r.code, 0, summary(r.out));
  // The patterns must have selected the tests (a renamed test would otherwise pass vacuously).
  assert.match(r.out, new RegExp(`^# pass ${MOUNT_TESTS.length}$`, 'm'), summary(r.out));
});

test('fuse-native: the lifecycle tests', { skip: loads }, async () => {
  const r = await run('mount-lifecycle.test.js', [], { MIQ_SIGTERM_TRIALS: '3' });
  assert.equal(r.code, 0, summary(r.out));
  // 4 tests ran and passed; the device-reuse one may skip itself (another mount took the freed
  // device number 3 times: the environment, not a failure), nothing else may.
  const count = (k: string): number => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(r.out)?.[1] ?? NaN);
  assert.equal(count('tests'), 4, summary(r.out));
  assert.equal(count('pass') + count('skipped'), 4, summary(r.out));
  assert.ok(count('skipped') === 0 || /^\s*ok \d+ - .*# SKIP the freed device/m.test(r.out), summary(r.out));
  assert.match(r.out, /miq mount lifecycle \(fuse-native\)/);
});
