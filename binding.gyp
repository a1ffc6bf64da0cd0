{
  # Compiler and linker flags come from binding/build-flags.json, shared with CMakeLists.txt.
  "variables": {
    "flags": "node -p \"require('./binding/build-flags.json')"
  },
  "target_defaults": {
    # The system OpenSSL headers go first, ahead of Node's bundled ones (see the script).
    # No -lssl/-lcrypto: the library is dlopen'ed in isolation at load (openssl_library.cc).
    "include_dirs": [
      "<!(node scripts/openssl-include.js build/openssl-include)",
      "<!(node -p \"require('node-addon-api').include_dir\")"
    ],
    "defines": ["<!@(<(flags).defines.join(' ')\")"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["<!@(<(flags).cflags_cc.join(' ')\")"],
    "ldflags": ["<!@(<(flags).ldflags.join(' ')\")"],
    "libraries": ["-ldl"]
  },
  "targets": [
    {
      "target_name": "tls_session",
      "sources": [
        "binding/addon.cc",
        "binding/addon_data.cc",
        "binding/openssl_errors.cc",
        "binding/openssl_library.cc",
        "binding/record_cipher.cc",
        "binding/session_functions.cc",
        "binding/session_ledger.cc",
        "binding/session_table.cc",
        "binding/tls_connection.cc",
        "binding/tls_context.cc",
        "binding/tls_engine.cc"
      ]
    }
  ]
}
