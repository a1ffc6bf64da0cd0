/**
 * Spawns a real redis-server on a free loopback port (no persistence). A missing redis-server
 * is a test failure with a clear message, never a skip.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from '../../helpers/free-port';

export interface RedisServer {
  port: number;
  url: string;
  /** The current redis-server process id. */
  readonly pid: number;
  /** SIGKILL (fault tests) and wait for the process to be gone. */
  kill(): Promise<void>;
  /** Start (again) on the same port: after kill(), stop(), or startRedis({ launch: false }). */
  restart(): Promise<void>;
  /** SIGTERM and wait; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * The server binary: TLS_SESSION_REDIS_SERVER when set (the Valkey lane points it at a
 * `redis-server` that runs Debian 13's valkey-server, with a `redis-cli` beside it), else Redis.
 */
export function redisServerPath(): string {
  const chosen = process.env.TLS_SESSION_REDIS_SERVER;
  if (chosen) return chosen;
  for (const candidate of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      /* try the next */
    }
  }
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'redis-server is not installed: install it (Debian: apt-get install -y redis-server; .ci/run does this) — these tests need a real Redis',
    );
  }
}

function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`redis-server did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export interface StartRedisOptions {
  /** false: only reserve the port (nothing listens there until restart()): a store started before its Redis. */
  launch?: boolean;
  /** `--requirepass`: clients must AUTH; `url` then carries it (redis://:PASSWORD@127.0.0.1:PORT). */
  password?: string;
  /** More redis-server arguments, after the defaults. */
  args?: string[];
}

/** A redis-server on a free port (see StartRedisOptions). */
export async function startRedis({ launch: launchNow = true, password, args = [] }: StartRedisOptions = {}): Promise<RedisServer> {
  const binary = redisServerPath();
  const port = await freePort();
  let child: ChildProcess | undefined;
  const serverArgs = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  if (password !== undefined) serverArgs.push('--requirepass', password);
  serverArgs.push(...args);
  const launch = async (): Promise<void> => {
    child = spawn(binary, serverArgs, { stdio: 'ignore' });
    await waitForPort(port, 10_000);
  };
  if (launchNow) await launch();
  return {
    port,
    get pid() {
      return child!.pid!;
    },
    url: password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    async kill() {
      if (!child) return;
      const exited = waitForExit(child);
      child.kill('SIGKILL');
      await exited;
    },
    async restart() {
      if (child && child.exitCode === null && child.signalCode === null) throw new Error('redis-server is still running');
      await launch();
    },
    async stop() {
      if (!child) return;
      const exited = waitForExit(child);
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** How many times Redis has run `command` since its stats were last reset (its own count, INFO commandstats). */
export async function commandCalls(admin: { info(section: string): Promise<string> }, command: string): Promise<number> {
  const info = await admin.info('commandstats');
  const match = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info);
  return match ? Number(match[1]) : 0;
}
