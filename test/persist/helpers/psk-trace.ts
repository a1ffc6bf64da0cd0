/**
 * The server-side proof that TLS 1.3 tickets are used once: `openssl s_server -trace` prints each
 * ClientHello's pre_shared_key extension as a hex dump; its identities are the tickets the client
 * offered (RFC 8446 §4.2.11: identities<7..2^16-1> of { identity<1..2^16-1>, obfuscated_ticket_age u32 }).
 */
import type { Pki } from '../../helpers/pki';
import { startSServer, type SServer } from '../../tls/helpers/peers';

/** Every ticket (hex) offered in a ClientHello that s_server traced, in order. */
export function offeredTickets(trace: string): string[] {
  const tickets: string[] = [];
  const lines = trace.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const header = /extension_type=psk\(41\), length=(\d+)/.exec(lines[i]!);
    if (!header || Number(header[1]) <= 2) continue; // length 2: the ServerHello's selected_identity
    const bytes: number[] = [];
    for (let j = i + 1; j < lines.length; j++) {
      const row = /^\s+[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){1,16})/.exec(lines[j]!);
      if (!row) break;
      for (const hex of row[1]!.trim().split(/[ -]+/)) bytes.push(Number.parseInt(hex, 16));
    }
    const extension = Buffer.from(bytes);
    const identitiesEnd = 2 + extension.readUInt16BE(0);
    for (let offset = 2; offset < identitiesEnd;) {
      const length = extension.readUInt16BE(offset);
      tickets.push(extension.toString('hex', offset + 2, offset + 2 + length));
      offset += 2 + length + 4;
    }
  }
  return tickets;
}

/** `openssl s_server -www -tls1_3 -trace`: one connection at a time, a status page per request. */
export function startTracingSServer(pki: Pki): Promise<SServer> {
  return startSServer(['-cert', pki.serverCertPath, '-key', pki.serverKeyPath, '-www', '-tls1_3', '-trace']);
}
