/**
 * README "Client sessions that survive restarts": its ```sh block runs verbatim, twice a new
 * process (examples/client-cache.ts, compiled: the slow lane builds dist/ first), in a directory
 * holding the `ca.crt` it names, against a live HTTPS server for localhost (the README's port 8443
 * is mapped to the server's free port); the output has the lines of the ```text block after it:
 * a full handshake, then a resumption. Its ```ts block (connect, destroy at once, an agent
 * request, close) runs verbatim too, twice a new process, against a TLS 1.2 and a TLS 1.3
 * server: the second process resumes (for TLS 1.3: from the tickets that came after the first
 * process had destroyed its socket).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tls from 'node:tls';
import * as ts from 'typescript';
import { makePki } from '../helpers/pki';
import { codeBlock, codeBlocks, ROOT } from './helpers/readme-example';
import { close, listen } from './helpers/tls-peers';

test('the README client example, run twice, resumes the second time', async () => {
  const pki = makePki();
  const dir = mkdtempSync(join(tmpdir(), 'tls-session-readme-client-'));
  const server = https.createServer({ key: pki.serverKey, cert: pki.serverCert }, (_request, response) => response.end('hello\n'));
  const port = await listen(server as unknown as tls.Server);
  try {
    writeFileSync(join(dir, 'ca.crt'), pki.ca);
    symlinkSync(join(ROOT, 'dist'), join(dir, 'dist'));
    const shBlocks = codeBlocks('README.md', 'sh');
    const commands = shBlocks.filter((block) => block.includes('examples/client-cache.js'));
    expect(commands).toHaveLength(1);
    const lines = commands[0]!.trim().split('\n');
    expect(lines).toHaveLength(2);
    // One after the other, asynchronously: the server lives in this process.
    const outputs: string[] = [];
    for (const line of lines) {
      const { stdout } = await promisify(execFile)('sh', ['-c', line.replaceAll('localhost:8443', `localhost:${port}`)], {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') },
        timeout: 30_000,
      });
      outputs.push(stdout);
    }
    const readme = codeBlocks('README.md', 'text').find((block) => block.includes('full handshake') && block.includes('resumed'))!;
    const expected = readme
      .trim()
      .split('\n')
      .map((line) => line.replaceAll('localhost:8443', `localhost:${port}`));
    expect(outputs.map((output) => output.trim())).toEqual(expected);
  } finally {
    await close(server as unknown as tls.Server);
    rmSync(dir, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  }
});

test.each(['TLSv1.2', 'TLSv1.3'] as const)(
  'the README client snippet (connect, destroy, close), run twice, resumes the second time: %s',
  async (version) => {
    const pki = makePki();
    const dir = mkdtempSync(join(tmpdir(), 'tls-session-readme-client-ts-'));
    const handshakes: boolean[] = [];
    const server = https.createServer({ key: pki.serverKey, cert: pki.serverCert, maxVersion: version }, (_request, response) =>
      response.end('hello\n'),
    );
    server.on('secureConnection', (socket: tls.TLSSocket) => handshakes.push(socket.isSessionReused()));
    const port = await listen(server as unknown as tls.Server);
    try {
      writeFileSync(join(dir, 'ca.crt'), pki.ca);
      // `tls-session` as a package resolves to the compiled library (ESM imports its CommonJS names).
      mkdirSync(join(dir, 'node_modules', 'tls-session'), { recursive: true });
      writeFileSync(join(dir, 'node_modules', 'tls-session', 'package.json'), JSON.stringify({ name: 'tls-session', main: 'index.js' }));
      writeFileSync(
        join(dir, 'node_modules', 'tls-session', 'index.js'),
        `module.exports = require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'index.js'))});\n`,
      );
      const block = codeBlock('README.md', 'ts', (text) => text.includes('new ClientSessionCache('));
      expect(block).toContain('port: 8443');
      const source = block.replaceAll('port: 8443', `port: ${port}`).replaceAll('localhost:8443', `localhost:${port}`);
      const compilerOptions = { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 };
      writeFileSync(join(dir, 'client.mjs'), ts.transpileModule(source, { compilerOptions }).outputText);
      const outputs: string[] = [];
      for (let run = 0; run < 2; run++) {
        const { stdout, stderr } = await promisify(execFile)(process.execPath, ['client.mjs'], {
          cwd: dir,
          encoding: 'utf8',
          timeout: 30_000,
        });
        expect(stderr).toBe('');
        outputs.push(stdout.trim());
      }
      expect({ version, outputs }).toEqual({ version, outputs: ['full handshake', 'resumed'] });
      // The server saw the first process's handshakes as full ones. (Not the second's: a socket
      // destroyed at 'secureConnect' may go before its TLS 1.2 Finished is flushed, so the server
      // may never complete that resumption; the client's own account is the one printed above.)
      expect(handshakes.slice(0, 2)).toEqual([false, false]);
    } finally {
      server.closeAllConnections();
      await close(server as unknown as tls.Server);
      rmSync(dir, { recursive: true, force: true });
      rmSync(pki.dir, { recursive: true, force: true });
    }
  },
  60_000,
);
