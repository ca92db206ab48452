import type { Command } from 'commander';
import { addRepo, configFromApt, getRepo, listRepos, makeConfig, removeRepo, requireRepo, updateRepo, type RepoState } from '../packages/repo.js';
import { loadUniverse } from '../packages/packed.js';
import { MiqError } from '../store/errors.js';
import { globals, printJson, progressLine, withStore } from './context.js';
import { registerPull } from './repo-pull.js';

type G = { json?: boolean };
const words = (s: string | undefined): string[] => (s ?? '').split(/[\s,]+/).filter(Boolean);

function summary(r: RepoState): string {
  const pk = r.suites.reduce((n, s) => n + s.packages, 0);
  const src = r.config.sources.map((s) => `${s.url} ${s.suites.join(',')} ${s.components.join(',')}`).join('; ');
  return `${r.config.name}\t${r.config.arch}\t${src}\t${r.index ? `${pk} packages, ${r.index}` : 'not updated yet'}`;
}

export function register(program: Command): void {
  const repo = program.command('repo').description('package repositories (Debian): add, update (signature-checked), list, show');
  registerPull(repo);

  repo.command('add')
    .description("add a repository: from this machine's apt sources (--from-apt) or by URL")
    .argument('<name>', 'repository name, e.g. debian')
    .option('--from-apt', "take suites, components, architecture and keyring from this machine's apt configuration")
    .option('--url <url>', 'archive base URL (mirror://debian/, file://…, http://…)')
    .option('--suites <list>', 'suites, e.g. bookworm,bookworm-updates')
    .option('--components <list>', 'components, e.g. main')
    .option('--arch <arch>', 'architecture (default: this machine)')
    .option('--keyring <file>', 'OpenPGP keyring the release files must be signed with')
    .option('--no-apt-lists', "with --from-apt: do not read apt's already-downloaded lists")
    .option('--replace', 'replace an existing repository of that name (the accepted dates are kept)')
    .option('--json', 'one JSON object')
    .action(async (name: string, o: G & { fromApt?: boolean; url?: string; suites?: string; components?: string; arch?: string; keyring?: string; aptLists?: boolean; replace?: boolean }, cmd: Command) => {
      let cfg;
      if (o.fromApt) {
        cfg = configFromApt(name);
        if (o.keyring) cfg.keyring = o.keyring;
        if (o.arch) cfg.arch = o.arch;
        if (o.aptLists === false) delete cfg.aptLists;
      } else if (o.url) {
        cfg = makeConfig(name, { url: o.url, suites: words(o.suites), components: words(o.components), ...(o.arch ? { arch: o.arch } : {}), ...(o.keyring ? { keyring: o.keyring } : {}) });
      } else {
        throw new MiqError('MIQ_BAD_INPUT', 'miq repo add: pass --from-apt, or --url URL --suites … --components …');
      }
      const r = await withStore(globals(cmd), (s) => addRepo(s, cfg, o.replace));
      if (o.json) return printJson(r);
      process.stdout.write(`added ${summary(r)}\nnext: miq repo update ${name}\n`);
    });

  repo.command('update')
    .description('fetch and verify the release files and package indexes; keep the index as a pinned store path')
    .argument('[names...]', 'repositories (default: all)')
    .option('--json', 'one JSON object per repository')
    .action(async (names: string[], o: G, cmd: Command) => {
      const g = { ...globals(cmd), json: o.json };
      const bar = progressLine(g);
      await withStore(g, async (s) => {
        const list = names.length ? names : (await listRepos(s)).map((r) => r.config.name);
        if (list.length === 0) throw new MiqError('MIQ_NOT_FOUND', 'no repository is configured; add one with `miq repo add debian --from-apt`');
        for (const n of list) {
          const r = await updateRepo(s, n, { onProgress: (w) => bar.update(`repo update ${n}: ${w}`) });
          bar.done();
          if (o.json) printJson(r);
          else process.stdout.write(`${n}: ${r.suites.map((x) => `${x.suite} (${x.dateText}, ${x.packages} packages)`).join(', ')} -> ${r.index}${r.changed ? '' : ' (unchanged)'}\n`);
        }
        // The ready universe of the new state, so the first resolve or install does not build it.
        bar.update('repo update: preparing the package universe');
        await loadUniverse(s);
        bar.done();
      });
    });

  repo.command('list')
    .description('list repositories')
    .option('--json', 'one JSON array')
    .action(async (o: G, cmd: Command) => {
      const rs = await withStore(globals(cmd), (s) => listRepos(s));
      if (o.json) return printJson(rs);
      for (const r of rs) process.stdout.write(`${summary(r)}\n`);
    });

  repo.command('show')
    .description('one repository: its configuration, accepted release dates and index')
    .argument('<name>')
    .option('--json', 'one JSON object')
    .action(async (name: string, o: G, cmd: Command) => {
      const r = await withStore(globals(cmd), (s) => requireRepo(s, name));
      if (o.json) return printJson(r);
      process.stdout.write(`name: ${r.config.name}\narch: ${r.config.arch}\nkeyring: ${r.config.keyring}\n${r.config.aptLists ? `apt lists: ${r.config.aptLists}\n` : ''}index: ${r.index ?? '(none; run miq repo update)'}\n`);
      for (const s of r.config.sources) process.stdout.write(`source: ${s.url} suites ${s.suites.join(' ')} components ${s.components.join(' ')}\n`);
      for (const s of r.suites) process.stdout.write(`suite ${s.suite}: Date ${s.dateText}, ${s.packages} packages\n`);
    });

  repo.command('remove')
    .description('forget a repository (its index becomes garbage for gc)')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await withStore(globals(cmd), async (s) => {
        await removeRepo(s, name);
        process.stdout.write(`removed repository ${name}\n`);
      });
    });
  void getRepo;
}
