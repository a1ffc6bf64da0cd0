/**
 * README "Client sessions that survive restarts": its ```sh block runs verbatim, twice a new
 * process (examples/client-cache.ts, compiled: the slow lane builds dist/ first), in a directory
 * holding the `ca.crt` it names, against a live HTTPS server for localhost (the README's port 8443
 * is mapped to the server's free port); the output has the lines of the ```text block after it:
 * a full handshake, then a resumption.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tls from 'node:tls';
import { makePki } from '../helpers/pki';
import { codeBlocks, ROOT } from './helpers/readme-example';
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
