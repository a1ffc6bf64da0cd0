/**
 * `tls-session probe HOST:PORT`: does a server (or a fleet, with --across) resume TLS sessions,
 * per protocol and mechanism? The connections are in probe-tls.ts; this file is the command.
 */
import * as net from 'node:net';
import type { Command } from 'commander';
import { EXIT_USAGE, fail, INPUT_LIMITS, printJson, readBounded, renderTable } from './output';
import { formatEndpoint, parseEndpoint, runProbe, type ProbeResult } from './probe-tls';

interface ProbeFlags {
  servername?: string;
  ca?: string;
  insecure?: boolean;
  json?: boolean;
  across?: string[];
  policy?: boolean;
  policyInterval?: string;
}

/** Longest wait for one TCP connect or TLS handshake. */
const TIMEOUT_MS = 5000;

export function registerProbeCommand(program: Command): void {
  program
    .command('probe')
    .description('tell whether a server resumes TLS sessions: TLS 1.3 ticket, TLS 1.2 ticket, TLS 1.2 session ID')
    .argument('<target>', 'the server, HOST:PORT ([v6]:PORT for IPv6)')
    .option('--servername <name>', 'SNI and the name the certificate must carry (default: HOST unless it is an IP)')
    .option('--ca <file>', 'trust the CA certificates in this PEM file (default: the system store)')
    .option('--insecure', 'do not verify the server certificate')
    .option('--json', 'print the results as JSON')
    .option(
      '--across <target...>',
      "offer the first target's sessions to these other targets too (repeatable): does the fleet share sessions?",
    )
    .option('--policy', "also report the server's ticket policy: lifetime hint, and whether the ticket key changed between two connections")
    .option('--policy-interval <seconds>', 'with --policy: seconds between the two connections compared (default 0)')
    .addHelpText(
      'after',
      `
Each check connects twice: a full handshake, then one offering the session it gave. Other
targets (--across) are reached under the first target's name, as one fleet behind one name.
With --policy each ticket check connects a third time (--policy-interval seconds after the
first) and compares the names of the keys that sealed the two tickets (never shown).
Exit code: 0 when every check resumed, 1 when one did not or a target is unreachable, 2 for
usage errors. Each connect or handshake may take ${TIMEOUT_MS / 1000} s.

Examples:
  $ tls-session probe example.com:443
  $ tls-session probe 10.0.0.1:443 --servername example.com --across 10.0.0.2:443 10.0.0.3:443 --json`,
    )
    .action(async (target: string, flags: ProbeFlags) => {
      const first = parseEndpoint(target);
      const across = (flags.across ?? []).map(parseEndpoint);
      const intervalSeconds = flags.policyInterval === undefined ? 0 : Number(flags.policyInterval);
      if (!Number.isFinite(intervalSeconds) || intervalSeconds < 0 || intervalSeconds > 3600) {
        fail(`bad --policy-interval ${JSON.stringify(flags.policyInterval)}: expected seconds, 0-3600`, EXIT_USAGE);
      }
      const results = await runProbe({
        target: first,
        across,
        servername: flags.servername ?? (net.isIP(first.host) ? undefined : first.host),
        ca: flags.ca === undefined ? undefined : readCa(flags.ca),
        insecure: flags.insecure === true,
        timeoutMs: TIMEOUT_MS,
        policy: flags.policy === true,
        policyIntervalMs: Math.round(intervalSeconds * 1000),
      });
      if (flags.json) printJson({ target: formatEndpoint(first), results });
      else process.stdout.write(renderResults(formatEndpoint(first), results, across.length > 0) + renderPolicy(results));
      process.exitCode = results.every((result) => result.resumed) ? 0 : 1;
    });
}

function readCa(file: string): Buffer {
  return readBounded(file, INPUT_LIMITS.ca, `--ca ${file}`);
}

const ms = (value: number | null): string => (value === null ? '-' : value.toFixed(2));

function renderResults(target: string, results: readonly ProbeResult[], withAcross: boolean): string {
  const withReason = results.some((result) => result.reason !== undefined);
  const header = ['PROTOCOL', 'MECHANISM', ...(withAcross ? ['OFFERED TO'] : []), 'RESUMED', 'FULL MS', 'RESUMED MS'];
  const rows = results.map((result) => [
    result.protocol,
    result.mechanism,
    ...(withAcross ? [result.across ?? target] : []),
    result.resumed ? 'yes' : 'no',
    ms(result.handshakeMs.full),
    ms(result.handshakeMs.resumed),
    ...(withReason ? [result.reason ?? ''] : []),
  ]);
  const resumed = results.filter((result) => result.resumed).length;
  return `probe ${target}\n` + renderTable(withReason ? [...header, 'NOTE'] : header, rows) + `${resumed} of ${results.length} resumed\n`;
}

/** --policy: one line per ticket check that got a ticket. */
function renderPolicy(results: readonly ProbeResult[]): string {
  const rows = results.filter((result) => result.policy !== undefined);
  if (rows.length === 0) return '';
  const lines = rows.map(({ protocol, policy }) => {
    const hint = policy!.ticketLifetimeHintSeconds === null ? 'not announced' : `${policy!.ticketLifetimeHintSeconds} s`;
    const changed = policy!.ticketKeyChanged === null ? 'unknown (no second ticket)' : policy!.ticketKeyChanged ? 'yes' : 'no';
    return `${protocol} ticket: lifetime hint ${hint}; key changed between connections ${policy!.intervalSeconds} s apart: ${changed}\n`;
  });
  return `ticket policy\n${lines.join('')}`;
}
