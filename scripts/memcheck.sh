#!/usr/bin/env bash
# Runs the TLS engine's dangling-pointer tests and the record cipher's under valgrind memcheck (npm run test:memcheck).
# Fails on any invalid read, write or free, use of uninitialised memory in a jump, or bad
# free/delete pairing; leaks are not errors here (V8 and Node keep their heaps at exit; the
# ledger assertions in the tests account for every SSL_SESSION reference instead).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
  echo "memcheck: valgrind is not installed (apt-get install valgrind)" >&2
  exit 2
fi
if [ ! -f build/Release/tls_session.node ]; then
  echo "memcheck: build the addon first (npm install)" >&2
  exit 2
fi

log="${MEMCHECK_LOG:-build/memcheck.log}"
mkdir -p "$(dirname "$log")"
# --runInBand: the tests run in this very process (worker threads included); the openssl CLI
# children that make the test PKI are not traced (not ours).
# --smc-check=all-non-file: V8 generates code at run time.
status=0
valgrind \
  --tool=memcheck \
  --error-exitcode=97 \
  --errors-for-leak-kinds=none \
  --leak-check=no \
  --smc-check=all-non-file \
  --suppressions=test/valgrind.supp \
  --log-file="$log" \
  node --expose-gc node_modules/jest/bin/jest.js --runInBand --testTimeout=600000 \
    test/tls/dangling.test.ts test/record-cipher.test.ts "$@" || status=$?

# Errors anywhere in our addon or in the OpenSSL it drives, whatever the exit code says.
errors=$(grep -cE '^==[0-9]+== (Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised|Source and destination overlap)' "$log" || true)
summary=$(grep -E 'ERROR SUMMARY' "$log" | tail -1 || true)
echo "memcheck: ${summary:-no summary} (log: $log)"
if [ "$status" = 97 ] || [ "$errors" != 0 ]; then
  echo "memcheck: FAILED: $errors memory error(s); see $log" >&2
  grep -E -A 12 '^==[0-9]+== (Invalid|Mismatched|Conditional|Use of)' "$log" | head -80 >&2 || true
  exit 1
fi
if [ "$status" != 0 ]; then
  echo "memcheck: the tests failed under valgrind (exit $status)" >&2
  exit "$status"
fi
echo "memcheck: clean"
