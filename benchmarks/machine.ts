/** Facts about the machine and the tools, for the report's header. */
import { cpus, hostname, release, totalmem } from 'node:os';
import { sh } from './util.js';

export interface MachineFacts {
  host: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  os: string;
  filesystem: string;
  node: string;
  tools: Record<string, string>;
}

const VERSION_CMDS: Record<string, string> = {
  casync: 'dpkg-query -W -f "\\${Version}" casync',
  restic: 'restic version',
  borg: 'borg --version',
  ostree: 'dpkg-query -W -f "\\${Version}" ostree',
  mksquashfs: 'dpkg-query -W -f "\\${Version}" squashfs-tools',
  'mkfs.erofs': 'dpkg-query -W -f "\\${Version}" erofs-utils',
  b3sum: 'b3sum --version',
  zstd: 'zstd -V | tr -d "*" | sed "s/^ *//"',
  tar: 'tar --version | head -1',
};

export async function machineFacts(workDir: string): Promise<MachineFacts> {
  const tools: Record<string, string> = {};
  for (const [k, cmd] of Object.entries(VERSION_CMDS)) {
    const r = await sh(cmd, { check: false });
    tools[k] = r.code === 0 ? r.stdout.trim().split('\n')[0]!.slice(0, 80) : 'not installed';
  }
  const os = await sh('. /etc/os-release && echo "$PRETTY_NAME"', { check: false });
  const fsType = await sh(`findmnt -n -o FSTYPE -T ${JSON.stringify(workDir)} || df -T ${JSON.stringify(workDir)} | tail -1 | awk '{print $2}'`, {
    check: false,
  });
  return {
    host: hostname(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    os: os.stdout.trim(),
    filesystem: fsType.stdout.trim().split('\n')[0] ?? '',
    node: process.version,
    tools,
  };
}
