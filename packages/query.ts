/** `miq search` and `miq show` over the loaded universe. */
import type { Store } from '../store/api.js';
import { MiqError } from '../store/errors.js';
import { loadUniverse } from './packed.js';
import { fieldOf, fullStanza } from './universe.js';

export interface SearchHit {
  name: string;
  version: string;
  arch: string;
  suite: string;
  summary: string;
}

export async function searchPackages(store: Store, term: string, o: { namesOnly?: boolean } = {}): Promise<SearchHit[]> {
  let re: RegExp;
  try {
    re = new RegExp(term, 'i');
  } catch (e) {
    throw new MiqError('MIQ_BAD_INPUT', `search term "${term}" is not a valid regular expression: ${(e as Error).message}`);
  }
  const u = await loadUniverse(store);
  const out: SearchHit[] = [];
  for (const name of u.names()) {
    const c = u.candidate(name)!;
    const summary = fieldOf(c, 'Description') ?? '';
    if (re.test(name) || (!o.namesOnly && re.test(summary))) out.push({ name, version: c.version, arch: c.arch, suite: c.suite, summary });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export async function showPackage(store: Store, spec: string): Promise<{ name: string; version: string; repo: string; suite: string; versions: string[]; fields: Record<string, string> }> {
  const u = await loadUniverse(store);
  const p = u.find(spec);
  if (!p) {
    const prov = u.providersOf(spec);
    const hint = prov?.length ? `; it is a virtual package provided by ${[...new Set(prov.map((x) => x.pkg.name))].slice(0, 5).join(', ')}` : '; `miq search` finds names';
    throw new MiqError('MIQ_NOT_FOUND', `no package "${spec}" in the repositories${hint}`);
  }
  const state = u.repos.find((r) => r.config.name === p.repo)!;
  const fields = (await fullStanza(store, state, p)) ?? p.fields;
  return { name: p.name, version: p.version, repo: p.repo, suite: p.suite, versions: u.versions(p.name).map((x) => x.version), fields };
}
