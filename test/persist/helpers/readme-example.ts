/**
 * Runs the documentation's code blocks verbatim (test/persist/readme-*.test.ts): a block is read
 * from README.md by a predicate (and checked against its copies in docs/, so they cannot drift),
 * written into a temporary app directory next to key.pem and cert.pem, where `tls-session`
 * resolves to the sources under test (lib/index.ts, through the fixtures' transpile hook), and
 * started as a process whose stderr is kept.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../helpers/free-port';
import type { Pki } from '../../helpers/pki';
import { waitFor } from './rotation';

export const ROOT = join(__dirname, '..', '..', '..');
/** The fixtures' require hook: runs TypeScript through typescript.transpileModule (fixtures/README.md). */
export const REGISTER_TS = join(__dirname, '..', 'fixtures', 'register-ts.js');

/** A TLS 1.2 client without the ticket extension: resumes by session ID, through the store. */
export const TLS12_SESSION_ID = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET } as const;

/** Every fenced block of `language` (```ts, ```sh, ...; '' for a bare ```) in a file of the repository, in order, as written. */
export function codeBlocks(file: string, language: string): string[] {
  const blocks: Array<{ language: string; lines: string[] }> = [];
  let open: { language: string; lines: string[] } | undefined;
  for (const line of readFileSync(join(ROOT, file), 'utf8').split('\n')) {
    if (open === undefined) {
      const fence = /^```(\S*)$/.exec(line);
      if (fence) open = { language: fence[1]!, lines: [] };
    } else if (line === '```') {
      blocks.push(open);
      open = undefined;
    } else open.lines.push(`${line}\n`);
  }
  return blocks.filter((block) => block.language === language).map((block) => block.lines.join(''));
}

/** The one block of `language` in `file` that `pick` chooses. */
export function codeBlock(file: string, language: string, pick: (block: string) => boolean): string {
  const picked = codeBlocks(file, language).filter(pick);
  if (picked.length !== 1) throw new Error(`${file}: ${picked.length} \`\`\`${language} blocks match, expected exactly 1`);
  return picked[0]!;
}

/** The README's ```ts block that `pick` chooses, exactly as written; each file in `copies` must repeat it word for word. */
export function readmeExample(pick: (block: string) => boolean, copies: string[] = []): string {
  const block = codeBlock('README.md', 'ts', pick);
  for (const copy of copies) expect({ [copy]: codeBlock(copy, 'ts', pick) }).toEqual({ [copy]: block });
  return block;
}

/** One process of an example app. */
export interface Member {
  port: number;
  child: ChildProcess;
  stderr(): string;
  /** Resolves once it accepts connections on `port`; fails with its stderr if it exits first. */
  listening(): Promise<void>;
  /** Sends `signal` and waits for the process to end. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** A temporary directory holding an example's files, key.pem, cert.pem and a node_modules/tls-session. */
export interface ExampleApp {
  dir: string;
  /** `node <script>` in the app's directory (TypeScript through the transpile hook) with `env` added, and PORT (a free one unless given). */
  start(script: string, env: Record<string, string>, port?: number): Promise<Member>;
  /** Kills what still runs and removes the directory. */
  remove(): void;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function exampleApp(name: string, pki: Pki, files: Record<string, string>): ExampleApp {
  const dir = mkdtempSync(join(tmpdir(), `tls-session-readme-${name}-`));
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  writeFileSync(join(dir, 'key.pem'), pki.serverKey);
  writeFileSync(join(dir, 'cert.pem'), pki.serverCert);
  // What `npm install tls-session` would provide, pointing at the sources under test.
  mkdirSync(join(dir, 'node_modules', 'tls-session'), { recursive: true });
  writeFileSync(join(dir, 'node_modules', 'tls-session', 'package.json'), JSON.stringify({ name: 'tls-session', main: 'index.js' }));
  writeFileSync(
    join(dir, 'node_modules', 'tls-session', 'index.js'),
    `module.exports = require(${JSON.stringify(join(ROOT, 'lib', 'index.ts'))});\n`,
  );
  const children: ChildProcess[] = [];

  async function start(script: string, env: Record<string, string>, port?: number): Promise<Member> {
    const memberPort = port ?? (await freePort());
    const child = spawn(process.execPath, ['-r', REGISTER_TS, script], {
      cwd: dir,
      env: { ...process.env, ...env, PORT: String(memberPort) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    return {
      port: memberPort,
      child,
      stderr: () => stderr,
      listening: () =>
        waitFor(async () => {
          if (child.exitCode !== null || child.signalCode !== null)
            throw new Error(`${script} exited (${child.exitCode ?? child.signalCode}): ${stderr}`);
          return accepts(memberPort);
        }, `${script} to listen on port ${memberPort}`),
      stop: (signal = 'SIGTERM') => {
        child.kill(signal);
        return exited;
      },
    };
  }

  return {
    dir,
    start,
    remove() {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Each member still runs and has printed nothing on stderr. */
export function expectHealthy(...members: Member[]): void {
  for (const member of members)
    expect({ port: member.port, exitCode: member.child.exitCode, stderr: member.stderr() }).toEqual({
      port: member.port,
      exitCode: null,
      stderr: '',
    });
}
