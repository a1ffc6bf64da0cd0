#!/usr/bin/env node
/**
 * The `tls-session` command. Only commander and the small output helpers load at start: each
 * subcommand loads the native addon, ioredis or SQLite inside its action, so `--help` is fast.
 */
import { Command, CommanderError } from 'commander';
import { registerDemoCommand } from './demo';
import { registerInspectCommand } from './inspect';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './output';
import { registerProbeCommand } from './probe';
import { registerStoreCommand } from './store';

/** The program with every subcommand registered; exported for tests and for the probe module. */
export function buildProgram(): Command {
  const program = new Command('tls-session')
    .description('Inspect TLS sessions, probe servers for resumption, look after session stores, and see resumption at work (demo)')
    .option('--debug', 'on failure, print the stack trace too')
    // Commander's own usage errors become one "tls-session: …" line and exit 2 (see run()).
    .configureOutput({ outputError: (message, write) => write(`tls-session: ${message.replace(/^error: /, '').trimEnd()} (see --help)\n`) })
    .exitOverride()
    .addHelpText(
      'after',
      `
Examples:
  $ tls-session inspect session.pem
  $ tls-session probe example.com:443
  $ tls-session store stats --sqlite /var/lib/myapp/tls-sessions.db
  $ tls-session demo`,
    );
  registerInspectCommand(program);
  registerProbeCommand(program);
  registerStoreCommand(program);
  registerDemoCommand(program);
  return program;
}

/** Parses `argv` and runs; resolves with the exit code. Never prints a stack without --debug. */
export async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version end through here with exit code 0; usage errors were already printed.
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    const debug = argv.includes('--debug');
    if (error instanceof CliError) {
      process.stderr.write(`tls-session: ${error.message}\n`);
      if (debug && error.stack) process.stderr.write(`${error.stack}\n`);
      return error.exitCode;
    }
    // Library errors name the problem and never a secret (README "Errors").
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`tls-session: ${message}\n`);
    if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    return EXIT_FAILURE;
  }
}

if (require.main === module) {
  run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
