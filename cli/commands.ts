/** Every command module; each exports `register(program)`. Help lists them in this order. */
import type { Command } from 'commander';
import { register as bench } from './bench.js';
import { register as build } from './build.js';
import { register as demo } from './demo.js';
import { register as fetch } from './fetch.js';
import { register as gc } from './gc.js';
import { register as ingest } from './ingest.js';
import { register as inspect } from './inspect.js';
import { register as key } from './key.js';
import { register as log } from './log.js';
import { register as mount } from './mount.js';
import { register as profile } from './profile.js';
import { register as push } from './push.js';
import { register as recipe } from './recipe.js';
import { register as stats } from './stats.js';
import { register as verify } from './verify.js';

const modules: ((program: Command) => void)[] = [
  demo, ingest, inspect, stats, verify, gc, // store (issue 2)
  build, recipe, log, // builds (issue 5)
  bench, // benchmarks (issue 6)
  key, push, fetch, // remotes (issue 4)
  mount, profile, // mount and profiles (issue 3)
];

export function registerAll(program: Command): void {
  for (const m of modules) m(program);
}
