/**
 * README "The tls-session command": every command in its ```sh blocks runs verbatim (`tls-session`
 * is the CLI from sources, on PATH) in a directory holding the files the examples name, made from
 * real sessions; its output has the shape of the ```text block that follows it (same lines and
 * field names; IDs, times and counts may differ). The usage block names only options that exist.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../lib/persist';
import { sClientSession, startSServer } from '../helpers/peers';
import { makePki } from '../helpers/pki';
import { root } from './cli';
import { fillStoreByHandshakes } from './fill-store';
import { startProbeServers, type ProbeServers } from './probe-servers';

interface Block {
  lang: string;
  body: string;
}

/** The fenced blocks of docs/COMMAND.md (the command's guide, linked from the README), in order. */
function sectionBlocks(): Block[] {
  const section = readFileSync(join(root, 'docs', 'COMMAND.md'), 'utf8');
  return [...section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, body: m[2]! }));
}

/** A README example: a command and the output the README shows for it (undefined: none shown). */
interface Example {
  command: string;
  shown: string | undefined;
}

function examples(blocks: Block[]): Example[] {
  const list: Example[] = [];
  for (const [index, block] of blocks.entries()) {
    if (block.lang !== 'sh') continue;
    const commands = block.body.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
    const next = blocks[index + 1];
    // A ```text block right after a one-command ```sh block is that command's output.
    const shown = commands.length === 1 && next?.lang === 'text' ? next.body : undefined;
    for (const command of commands) list.push({ command, shown });
  }
  return list;
}

/**
 * What an output must share with the README's: its lines, labels and punctuation, with values that
 * differ from run to run (hex IDs, fingerprints, dates, relative times, numbers) replaced by
 * placeholders and runs of spaces (table padding) collapsed.
 */
function shape(text: string): string[] {
  return text
    .trimEnd()
    .split('\n')
    .map((line) =>
      line
        .replace(/\b[0-9A-F]{2}(:[0-9A-F]{2}){7,}\b/g, '<fingerprint>')
        .replace(/\b[0-9a-fA-F]{16,}\b/g, '<hex>')
        .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<date>')
        .replace(/\b(in )?\d+ (d|h|min|s)( \d+ (d|h|min|s))?( ago)?\b/g, '<relative>')
        .replace(/\d+/g, '<n>')
        .replace(/ {2,}/g, '  ')
        .trimEnd(),
    );
}

const dir = mkdtempSync(join(tmpdir(), 'tls-session-readme-cli-'));
let probeServers: ProbeServers;
/** The ports the README's probe examples name, and the server each stands for (fixtures/probe-servers.js). */
let readmePorts: Record<string, number>;
const work = join(dir, 'work');
const bin = join(dir, 'bin');

beforeAll(async () => {
  mkdirSync(work);
  mkdirSync(bin);
  // `tls-session` on PATH: the command from its TypeScript sources.
  const script = join(bin, 'tls-session');
  writeFileSync(
    script,
    `#!/bin/sh\nexec "${process.execPath}" -r "${join(root, 'test', 'persist', 'fixtures', 'register-ts.js')}" "${join(root, 'lib', 'cli', 'main.ts')}" "$@"\n`,
  );
  chmodSync(script, 0o755);
  const pki = makePki();
  // ca.crt and the servers the probe examples talk to; their README ports are mapped to real ones.
  writeFileSync(join(work, 'ca.crt'), pki.ca);
  probeServers = await startProbeServers(pki);
  const { plain, fleetA, fleetB, storedOther } = probeServers.ports;
  readmePorts = { '8443': plain, '8444': fleetA, '8445': fleetB, '8446': storedOther };
  // session.pem: what `openssl s_client -sess_out` saved from a TLS 1.3 server for "localhost".
  const sServer = await startSServer(pki);
  try {
    const { der } = await sClientSession(sServer.port, { tls: '1.3', pki, servername: 'localhost' });
    writeFileSync(join(work, 'session.pem'), execFileSync('openssl', ['sess_id', '-inform', 'DER', '-outform', 'PEM'], { input: der }));
  } finally {
    await sServer.stop();
  }
  // sessions.db: a SqliteStore a TLS 1.2 server wrote through attachSessionStore and TicketKeyRing,
  // sealed with secret.hex; one record altered on disk.
  const secret = randomBytes(32);
  writeFileSync(join(work, 'secret.hex'), `${secret.toString('hex')}\n`);
  const store = new SqliteStore({ path: join(work, 'sessions.db'), sweepIntervalMs: 0 });
  await fillStoreByHandshakes(store, pki, { secret });
  let tampered = false;
  for await (const entry of store.entries()) {
    if (tampered || !entry.key.startsWith('session:')) continue;
    entry.value[entry.value.length - 20] ^= 0x01;
    await store.set(entry.key, entry.value, 3600);
    tampered = true;
  }
  await store.close();
  expect(tampered).toBe(true);
}, 60_000);

afterAll(() => probeServers.stop());

/** The command as the README writes it, with the example ports (8443-8446) mapped to the test's servers. */
const withRealPorts = (command: string): string => command.replace(/:(844[3-6])\b/g, (_, port: string) => `:${readmePorts[port]}`);

/** The exit code the README states or implies: verify with a bad record, or a probe where not every row resumed: 1. */
function expectedStatus(command: string, shown: string | undefined): number {
  if (/^tls-session store verify /.test(command) && !command.includes('--delete-bad')) return 1;
  const resumed = shown === undefined ? null : /^(\d+) of (\d+) resumed$/m.exec(shown);
  if (/^tls-session probe /.test(command) && resumed) return resumed[1] === resumed[2] ? 0 : 1;
  return 0;
}

test('the section shows commands with their output', () => {
  const list = examples(sectionBlocks());
  expect(list.length).toBeGreaterThanOrEqual(4);
  expect(list.filter((example) => example.shown !== undefined).length).toBeGreaterThanOrEqual(4);
  for (const { command } of list) expect(command).toMatch(/^tls-session /);
});

test('every command of the section runs verbatim, with output of the shape the README shows', () => {
  for (const { command, shown } of examples(sectionBlocks())) {
    const result = spawnSync('sh', ['-c', withRealPorts(command)], {
      cwd: work,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect([command, result.status, result.stderr]).toEqual([command, expectedStatus(command, shown), '']);
    if (shown === undefined) continue;
    if (command.includes('--json')) {
      // Same fields, with values of the same type.
      const types = (text: string): Record<string, string> =>
        Object.fromEntries(Object.entries(JSON.parse(text) as object).map(([key, value]) => [key, value === null ? 'null' : typeof value]));
      expect([command, types(result.stdout)]).toEqual([command, types(shown)]);
    } else {
      expect([command, shape(result.stdout)]).toEqual([command, shape(shown)]);
    }
  }
});

test('the usage block names commands and options that --help lists', () => {
  const blocks = sectionBlocks();
  const usage = blocks.find((block) => block.lang === 'text' && block.body.startsWith('tls-session '));
  expect(usage).toBeDefined();
  for (const line of usage!.body.trimEnd().split('\n')) {
    const words = line.split(/\s+/);
    // "tls-session store stats|ls|purge|verify ...": the command path, then its options.
    const path = words.slice(1).filter((word, i) => i < 2 && /^[a-z|]+$/.test(word));
    const subcommands = path.length === 2 ? path[1]!.split('|') : [undefined];
    for (const sub of subcommands) {
      const args = [path[0]!, ...(sub ? [sub] : []), '--help'];
      const help = spawnSync(join(bin, 'tls-session'), args, { encoding: 'utf8' });
      expect([line, args, help.status]).toEqual([line, args, 0]);
      for (const option of line.match(/--[a-z-]+/g) ?? []) expect([args, help.stdout]).toEqual([args, expect.stringContaining(option)]);
    }
  }
});
