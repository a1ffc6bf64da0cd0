{
  "targets": [
    {
      "target_name": "tls_session",
      "sources": [
        "binding/addon.cc",
        "binding/addon_data.cc",
        "binding/openssl_errors.cc",
        "binding/openssl_library.cc",
        "binding/session_functions.cc",
        "binding/session_ledger.cc",
        "binding/session_table.cc",
        "binding/tls_connection.cc",
        "binding/tls_context.cc",
        "binding/tls_engine.cc"
      ],
      # The system OpenSSL headers go first, ahead of Node's bundled ones (see the script).
      # No -lssl/-lcrypto: the library is dlopen'ed in isolation at load (openssl_library.cc).
      "include_dirs+": [
        "<!(node scripts/openssl-include.js build/openssl-include)",
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: an error raised while the environment shuts down
      # (worker.terminate()) cannot be thrown into JavaScript; without it node-addon-api aborts the process.
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"],
      "ldflags": ["-Wl,-Bsymbolic", "-Wl,--exclude-libs,ALL"],
      "libraries": ["-ldl"]
    }
  ]
}
