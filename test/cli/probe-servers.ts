/** The loopback servers `tls-session probe` is tested against (fixtures/probe-servers.js), in their own process. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Pki } from '../helpers/pki';
import { root } from './cli';

export type ProbeServerPorts = Record<'plain' | 'stored' | 'storedOther' | 'fleetA' | 'fleetB' | 'tls13only', number>;

export interface ProbeServers {
  ports: ProbeServerPorts;
  stop(): Promise<void>;
}

/** Starts them; resolves once all listen. stop() closes their stdin, which ends the process. */
export async function startProbeServers(pki: Pki): Promise<ProbeServers> {
  const child = spawn(
    process.execPath,
    [
      join(root, 'test', 'cli', 'fixtures', 'probe-servers.js'),
      JSON.stringify({ certPath: pki.serverCertPath, keyPath: pki.serverKeyPath }),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return {
    ports: JSON.parse(line.toString('utf8')) as ProbeServerPorts,
    async stop() {
      child.stdin!.end();
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}
