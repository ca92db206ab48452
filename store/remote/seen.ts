/**
 * Rollback protection (as CernVM-FS's revision check): the highest pointer sequence seen per
 * remote and profile, kept in a small JSON file. A pointer with a lower sequence, or a different
 * pointer with the same sequence, is refused: a mirror or an attacker replaying an old signed
 * pointer cannot move a client back to an older (maybe vulnerable) generation.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MiqError } from '../errors.js';
import type { Id } from '../ids.js';
import { mkdirp } from '../mkdirp.js';

interface Seen {
  sequence: number;
  tree: Id;
}

export class SeenPointers {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  private async load(): Promise<Record<string, Seen>> {
    try {
      return JSON.parse(await readFile(this.file, 'utf8')) as Record<string, Seen>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new MiqError('MIQ_CORRUPT', `${this.file} is unreadable; it records the pointer sequences seen (rollback protection)`, { cause: e });
    }
  }

  async get(remote: string, profile: string): Promise<Seen | undefined> {
    return (await this.load())[`${remote}#${profile}`];
  }

  /** Refuses a rollback; records a newer pointer. Serialised, and merged with the file as it is
   * at write time, so two processes only ever raise the value. */
  check(remote: string, profile: string, sequence: number, tree: Id): Promise<void> {
    const run = async (): Promise<void> => {
      const all = await this.load();
      const key = `${remote}#${profile}`;
      const prev = all[key];
      if (prev && sequence < prev.sequence) {
        throw new MiqError('MIQ_UNTRUSTED', `pointer of profile ${profile} at ${remote} went back from sequence ${prev.sequence} to ${sequence}; refusing the rollback`, { details: { profile, remote, sequence, seen: prev.sequence } });
      }
      if (prev && sequence === prev.sequence && tree !== prev.tree) {
        throw new MiqError('MIQ_UNTRUSTED', `pointer of profile ${profile} at ${remote} has sequence ${sequence} as before but a different tree; refusing it`, { details: { profile, remote, sequence } });
      }
      if (prev && sequence === prev.sequence) return;
      all[key] = { sequence, tree };
      await mkdirp(dirname(this.file));
      const tmp = `${this.file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      await writeFile(tmp, `${JSON.stringify(all, null, 1)}\n`);
      await rename(tmp, this.file);
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }
}
