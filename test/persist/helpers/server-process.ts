/** Runs fixtures/session-server.js in its own process (a real restart, a real fleet member). */
import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { SqliteBackendName } from '../../../lib/persist/stores/sqlite-backends';

export interface ServerProcessConfig {
  store: 'sqlite' | 'redis';
  path?: string;
  /** SqliteStore's `backend` option (default 'auto'). */
  sqliteBackend?: SqliteBackendName;
  url?: string;
  mode: 'tls12-store' | 'tls13-ring';
  secretHex?: string;
  certPath: string;
  keyPath: string;
}

export interface ServerProcess {
  port: number;
  /** The member's Node version and how it binds server sessions (node-internals.ts, sessionBinding). */
  nodeVersion: string;
  binding: string;
  child: ChildProcess;
  /** SIGTERM; resolves with the stats the process printed on its way out (and the SqliteStore's backend). */
  stop(): Promise<{ stats: Record<string, unknown>; ring: Record<string, unknown> | null; sqliteBackend?: SqliteBackendName }>;
}

const FIXTURE = join(__dirname, '..', 'fixtures', 'session-server.js');

/** `node`: the Node binary the member runs on (default: this process's; another release for a rolling-upgrade fleet). */
export function startServerProcess(config: ServerProcessConfig, extraArgs: string[] = [], node = process.execPath): Promise<ServerProcess> {
  const child = spawn(node, [FIXTURE, JSON.stringify(config), ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    let newline: number;
    while ((newline = stdout.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(stdout.slice(0, newline)) as Record<string, unknown>);
      stdout = stdout.slice(newline + 1);
      waiters.splice(0).forEach((wake) => wake());
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const nextLine = (predicate: (line: Record<string, unknown>) => boolean, what: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = lines.find(predicate);
        if (found) return resolve(found);
        waiters.push(check);
      };
      exited.then((code) =>
        setImmediate(() => {
          const found = lines.find(predicate);
          if (found) resolve(found);
          else reject(new Error(`session-server exited (code ${code}) before ${what}; stderr: ${stderr}`));
        }),
      );
      check();
    });

  return nextLine((line) => line.ready === true, 'listening').then((ready) => ({
    port: ready.port as number,
    nodeVersion: ready.nodeVersion as string,
    binding: ready.binding as string,
    child,
    async stop() {
      child.kill('SIGTERM');
      const line = await nextLine((l) => 'stats' in l, 'printing its stats');
      const code = await exited;
      if (code !== 0) throw new Error(`session-server exited with code ${code}; stderr: ${stderr}`);
      return line as { stats: Record<string, unknown>; ring: Record<string, unknown> | null; sqliteBackend?: SqliteBackendName };
    },
  }));
}
