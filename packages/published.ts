/**
 * A repository learnt from a miq remote (`miq repo pull`, issue 14 §2) instead of from the
 * distribution: the publisher's state record, whose index store path came signed from the remote,
 * becomes this store's `repos/<name>` record in one batch, as an update would leave it.
 */
import type { Store } from '../store/api.js';
import { ROOT_PREFIX } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { checkRepoName, type RepoState } from './repo.js';

export async function adoptPublishedRepo(store: Store, name: string, state: Record<string, unknown>, index: string, pin: boolean): Promise<RepoState> {
  checkRepoName(name);
  const s = state as unknown as RepoState;
  if (s?.config?.name !== name || !Array.isArray(s.suites) || !Array.isArray(s.config.sources)) {
    throw new MiqError('MIQ_CORRUPT', `the published state of repository ${name} is malformed`);
  }
  const adopted: RepoState = { ...s, index };
  await store.batchMeta([
    { key: `repos/${name}`, value: Buffer.from(JSON.stringify(adopted)) },
    ...(pin ? [{ key: `${ROOT_PREFIX}repo-${name}`, value: Buffer.from(index) }] : []),
  ]);
  return adopted;
}
