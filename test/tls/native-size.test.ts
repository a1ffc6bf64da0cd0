/**
 * Contexts and connections tell V8 what native memory they hold (napi_adjust_external_memory),
 * so that dropped ones are collected under memory pressure, and take it back when released.
 */
import { TlsConnection, TlsContext } from '../../lib';
import { reportedTlsNativeBytes } from '../../lib/tls/engine';
import { makePki } from '../helpers/pki';
import { duplexPair } from './helpers/duplex-pair';

// process.memoryUsage().external does not include napi_adjust_external_memory on these Node
// lines, so the engine's own account of what it reported is read instead.
const external = reportedTlsNativeBytes;

test('100 contexts and 100 connections report their native size while alive, and return it when released', () => {
  const pki = makePki();
  const before = external();
  const contexts = Array.from({ length: 100 }, () => new TlsContext({ role: 'server', cert: pki.serverCert, key: pki.serverKey }));
  const withContexts = external();
  const connections = contexts.map((ctx) => TlsConnection.accept(ctx, duplexPair()[0]));
  const withConnections = external();
  // 16 KiB per context, 48 KiB per connection (binding/tls_context.h, tls_connection.h).
  expect(withContexts - before).toBe(100 * 16 * 1024);
  expect(withConnections - withContexts).toBe(100 * 48 * 1024);
  for (const c of connections) c.destroy();
  for (const ctx of contexts) ctx.close();
  expect(external()).toBe(before);
});
