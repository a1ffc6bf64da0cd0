// Owner types: every OpenSSL object the addon owns is held by one of these from the moment it
// is created (or handed to us) until it is freed or explicitly handed over with release() at a
// documented hand-over point (docs/ARCHITECTURE.md, "Owner types"). Ownership is read off the
// type: a raw pointer is always borrowed. The deleters call through the dlsym'ed function table
// (the system libssl), never a symbol the linker could bind to Node's copy.
#ifndef TLS_SESSION_OPENSSL_POINTERS_H_
#define TLS_SESSION_OPENSSL_POINTERS_H_

#include <memory>

#include "openssl_library.h"

namespace tls_session {

// Frees with the function table's member `Free` (e.g. &OpenSSLApi::SSL_SESSION_free).
template <typename T, auto OpenSSLApi::*Free>
struct FreeWith {
  void operator()(T* object) const noexcept {
    if (object != nullptr) (ossl().*Free)(object);
  }
};

template <typename T, auto OpenSSLApi::*Free>
using OwnedPointer = std::unique_ptr<T, FreeWith<T, Free>>;

using SessionPointer = OwnedPointer<SSL_SESSION, &OpenSSLApi::SSL_SESSION_free>;
using X509Pointer = OwnedPointer<X509, &OpenSSLApi::X509_free>;
using EVPKeyPointer = OwnedPointer<EVP_PKEY, &OpenSSLApi::EVP_PKEY_free>;
using BIOPointer = OwnedPointer<BIO, &OpenSSLApi::BIO_free>;
using CipherCtxPointer = OwnedPointer<EVP_CIPHER_CTX, &OpenSSLApi::EVP_CIPHER_CTX_free>;
// SSL and SSL_CTX are released through TlsEngine::Free (which may defer the free until OpenSSL
// is off the stack); these deleters only run for objects that never reached the engine.
using SSLPointer = OwnedPointer<SSL, &OpenSSLApi::SSL_free>;
using SSLCtxPointer = OwnedPointer<SSL_CTX, &OpenSSLApi::SSL_CTX_free>;

}  // namespace tls_session

#endif  // TLS_SESSION_OPENSSL_POINTERS_H_
