/**
 * npm run demo / `npx tls-session demo`: the demo ships with the package (lib/cli/demo.ts); this
 * file only runs it, so a clone and a package user see the same thing.
 */
import { runDemo } from '../lib/cli/demo';

runDemo().then(
  (code) => (process.exitCode = code),
  (error: Error & { code?: string }) => {
    console.error(`demo failed: ${error.code ?? ''} ${error.message}`);
    process.exitCode = 1;
  },
);
