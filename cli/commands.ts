/** Every command module; each exports `register(program)`. Append new ones here. */
import type { Command } from 'commander';
import { register as ingest } from './ingest.js';
import { register as inspect } from './inspect.js';
import { register as stats } from './stats.js';
import { register as verify } from './verify.js';
import { register as gc } from './gc.js';
import { register as demo } from './demo.js';

const modules: ((program: Command) => void)[] = [demo, ingest, inspect, stats, verify, gc];

export function registerAll(program: Command): void {
  for (const m of modules) m(program);
}

// builder commands (issue 5)
import { register as build } from './build.js';
import { register as recipe } from './recipe.js';
import { register as log } from './log.js';
modules.push(build, recipe, log);
import { register as bench } from './bench.js';
modules.push(bench);

// remote commands (issue 4)
import { register as key } from './key.js';
import { register as push } from './push.js';
import { register as fetch } from './fetch.js';
modules.push(key, push, fetch);

// mount and profiles (issue 3)
import { register as mount } from './mount.js';
import { register as profile } from './profile.js';
modules.push(mount, profile);
