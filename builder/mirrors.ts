/**
 * `mirror://NAME/rest` names a file on a well-known archive without naming a host: recipes stay
 * valid on any machine and behind any mirror. A name resolves, first match wins, through
 *   1. explicit options (the CLI's `--mirror NAME=URL`),
 *   2. $MIQ_MIRROR_<NAME> (comma-separated base URLs; NAME upper-cased, non-alphanumerics as _),
 *   3. the config file ($MIQ_CONFIG, else $XDG_CONFIG_HOME/miq/config.json, else
 *      /etc/miq/config.json): {"mirrors": {"debian": ["<base URL>", ...]}},
 *   4. for `debian` only: the archive in the host's apt sources (deb822 files in
 *      /etc/apt/sources.list.d/*.sources, then one-line sources.list files), leaving out
 *      security and ports archives, whose pool layout differs; for `debian-security`: the
 *      security archive in those sources.
 * Several bases are tried in order.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MiqError } from '../store/errors.js';

export type MirrorMap = Readonly<Record<string, readonly string[]>>;

export interface AptEntry {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  enabled: boolean;
}

/** Parses deb822 `.sources` text. Pure. */
export function parseDeb822Sources(text: string): AptEntry[] {
  const out: AptEntry[] = [];
  for (const para of text.replace(/\r\n/g, '\n').split(/\n[ \t]*\n/)) {
    const fields: Record<string, string> = {};
    let last: string | undefined;
    for (const line of para.split('\n')) {
      if (line.startsWith('#') || line.trim() === '') continue;
      if (/^[ \t]/.test(line) && last) {
        fields[last] += ` ${line.trim()}`;
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (!m) continue;
      last = m[1]!.toLowerCase();
      fields[last] = m[2]!.trim();
    }
    if (!fields.types || !fields.uris) continue;
    const words = (s: string | undefined): string[] => (s ?? '').split(/\s+/).filter(Boolean);
    out.push({
      types: words(fields.types),
      uris: words(fields.uris),
      suites: words(fields.suites),
      components: words(fields.components),
      enabled: (fields.enabled ?? 'yes').toLowerCase() !== 'no',
    });
  }
  return out;
}

/** Parses one-line `sources.list` text (`deb [opts] URI suite comp...`). Pure. */
export function parseOneLineSources(text: string): AptEntry[] {
  const out: AptEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    out.push({ types: [m[1]!], uris: [m[2]!], suites: [m[3]!], components: m[4]!.split(/\s+/).filter(Boolean), enabled: true });
  }
  return out;
}

/** Base URLs of the main Debian archive among apt entries, in order, without duplicates. Pure. */
export function debianArchives(entries: readonly AptEntry[]): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (!e.enabled || !e.types.some((t) => t === 'deb' || t === 'deb-src')) continue;
    if (e.suites.some((s) => /-security$|\/updates$/.test(s))) continue;
    for (const u of e.uris) {
      if (!/^https?:\/\//.test(u)) continue;
      const base = u.replace(/\/+$/, '');
      if (/-security$|-ports$/.test(base)) continue;
      if (!out.includes(base)) out.push(base);
    }
  }
  return out;
}

/** Base URLs of the Debian security archive among apt entries. Pure. */
export function debianSecurityArchives(entries: readonly AptEntry[]): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (!e.enabled || !e.types.includes('deb')) continue;
    for (const u of e.uris) {
      const base = u.replace(/\/+$/, '');
      if (/^https?:\/\/.*-security$/.test(base) && !out.includes(base)) out.push(base);
    }
  }
  return out;
}

/** Reads the host's apt sources (deb822 first, then one-line). */
export function hostAptEntries(aptDir = '/etc/apt'): AptEntry[] {
  const entries: AptEntry[] = [];
  const partsDir = join(aptDir, 'sources.list.d');
  let parts: string[] = [];
  try {
    parts = readdirSync(partsDir).sort();
  } catch {
    // no parts directory: only sources.list
  }
  const read = (p: string): string => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  for (const f of parts) if (f.endsWith('.sources')) entries.push(...parseDeb822Sources(read(join(partsDir, f))));
  entries.push(...parseOneLineSources(read(join(aptDir, 'sources.list'))));
  for (const f of parts) if (f.endsWith('.list')) entries.push(...parseOneLineSources(read(join(partsDir, f))));
  return entries;
}

function configFile(env: NodeJS.ProcessEnv): string | undefined {
  if (env.MIQ_CONFIG) return env.MIQ_CONFIG;
  const xdg = join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'miq', 'config.json');
  if (existsSync(xdg)) return xdg;
  if (existsSync('/etc/miq/config.json')) return '/etc/miq/config.json';
  return undefined;
}

function fromConfig(env: NodeJS.ProcessEnv): MirrorMap {
  const f = configFile(env);
  if (!f || !existsSync(f)) return {};
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(f, 'utf8'));
  } catch (e) {
    throw new MiqError('MIQ_BAD_INPUT', `config file ${f} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const m = (v as { mirrors?: unknown }).mirrors;
  if (m === undefined) return {};
  const out: Record<string, string[]> = {};
  for (const [k, u] of Object.entries(m as Record<string, unknown>)) out[k] = (Array.isArray(u) ? u : [u]).map(String);
  return out;
}

export interface MirrorOptions {
  /** Highest priority, e.g. from `--mirror debian=URL`. */
  mirrors?: MirrorMap;
  env?: NodeJS.ProcessEnv;
  /** Where apt's configuration lives (tests point it elsewhere). */
  aptDir?: string;
}

/** Base URLs for one mirror name; throws MIQ_BAD_INPUT when none is configured. */
export function mirrorBases(name: string, opts: MirrorOptions = {}): string[] {
  const env = opts.env ?? process.env;
  const explicit = opts.mirrors?.[name];
  if (explicit && explicit.length) return explicit.map((u) => u.replace(/\/+$/, ''));
  const envName = `MIQ_MIRROR_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
  const fromEnv = env[envName];
  if (fromEnv) return fromEnv.split(',').map((s) => s.trim().replace(/\/+$/, '')).filter(Boolean);
  const cfg = fromConfig(env)[name];
  if (cfg && cfg.length) return cfg.map((u) => u.replace(/\/+$/, ''));
  if (name === 'debian') {
    const bases = debianArchives(hostAptEntries(opts.aptDir));
    if (bases.length) return bases;
  }
  if (name === 'debian-security') {
    const bases = debianSecurityArchives(hostAptEntries(opts.aptDir));
    if (bases.length) return bases;
  }
  throw new MiqError('MIQ_BAD_INPUT', `no mirror configured for mirror://${name}/: set ${envName}=URL, pass --mirror ${name}=URL, or add it to the miq config file`, { details: { mirror: name } });
}

/** The concrete URLs to try for a source URL, in order. */
export function resolveUrl(url: string, opts: MirrorOptions = {}): string[] {
  const m = /^mirror:\/\/([^/]+)\/(.*)$/.exec(url);
  if (!m) return [url];
  return mirrorBases(m[1]!, opts).map((b) => `${b}/${m[2]!}`);
}
