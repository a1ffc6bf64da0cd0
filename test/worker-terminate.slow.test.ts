/**
 * worker.terminate() at any moment — while the addon initialises, mid-call, mid-handshake —
 * ends the worker, never the process. Regression: node-addon-api without
 * NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS aborted the process ("terminate called after throwing
 * an instance of 'Napi::Error'") when an error was raised while the environment shut down.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { makeSampleSessions } from './helpers/sessions';

test('terminating 60 workers that use sessions and the TLS engine never aborts the process', async () => {
  const { pki, server } = await makeSampleSessions();
  const driver = join(__dirname, 'fixtures', 'terminate-driver.js');
  const run = spawnSync(process.execPath, [driver, '60', server.toString('hex'), pki.serverCertPath, pki.serverKeyPath], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  const diagnosis = `signal ${run.signal}, status ${run.status}, stderr: ${run.stderr.slice(-500)}`;
  expect({ signal: run.signal, status: run.status, diagnosis }).toEqual({ signal: null, status: 0, diagnosis });
  expect(run.stdout).toContain('survived 60');
}, 150_000);
