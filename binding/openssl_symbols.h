// The one list of OpenSSL functions the addon calls. Each X(name) becomes a member of
// OpenSSLApi with the exact type of the system header's declaration, bound with dlsym from
// the library it is listed under, and proven with dladdr at load. Nothing else calls OpenSSL:
// the addon imports no OpenSSL symbol (test/isolation.test.ts checks its dynamic symbols).
// Function-like macros (OPENSSL_free, SSL_CTX_set_mode, ...) must be written out in terms of
// the real functions listed here.
#ifndef TLS_SESSION_OPENSSL_SYMBOLS_H_
#define TLS_SESSION_OPENSSL_SYMBOLS_H_

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#if !defined(OPENSSL_VERSION_MAJOR) || OPENSSL_VERSION_MAJOR < 3
#error "tls-session compiles against the system OpenSSL 3 headers; see scripts/openssl-include.js"
#endif

// Functions exported by libssl.so.3.
#define TLS_SESSION_LIBSSL_SYMBOLS(X)     \
  X(d2i_SSL_SESSION)                      \
  X(i2d_SSL_SESSION)                      \
  X(SSL_SESSION_new)                      \
  X(SSL_SESSION_free)                     \
  X(SSL_SESSION_up_ref)                   \
  X(SSL_SESSION_dup)                      \
  X(SSL_SESSION_get_id)                   \
  X(SSL_SESSION_get0_id_context)          \
  X(SSL_SESSION_get_protocol_version)     \
  X(SSL_SESSION_get0_cipher)              \
  X(SSL_SESSION_get_time)                 \
  X(SSL_SESSION_get_timeout)              \
  X(SSL_SESSION_is_resumable)             \
  X(SSL_SESSION_has_ticket)               \
  X(SSL_SESSION_get_ticket_lifetime_hint) \
  X(SSL_SESSION_get_max_early_data)       \
  X(SSL_SESSION_get0_hostname)            \
  X(SSL_SESSION_get0_alpn_selected)       \
  X(SSL_SESSION_get0_peer)                \
  X(SSL_CIPHER_get_name)                  \
  X(OPENSSL_init_ssl)                     \
  X(TLS_method)                           \
  X(TLS_client_method)                    \
  X(TLS_server_method)                    \
  X(SSL_CTX_new)                          \
  X(SSL_CTX_free)                         \
  X(SSL_CTX_ctrl)                         \
  X(SSL_CTX_set_options)                  \
  X(SSL_CTX_set_timeout)                  \
  X(SSL_CTX_use_certificate)              \
  X(SSL_CTX_use_PrivateKey)               \
  X(SSL_CTX_check_private_key)            \
  X(SSL_CTX_get_cert_store)               \
  X(SSL_CTX_set_verify)                   \
  X(SSL_CTX_set_cipher_list)              \
  X(SSL_CTX_set_ciphersuites)             \
  X(SSL_CTX_set_alpn_protos)              \
  X(SSL_CTX_set_alpn_select_cb)           \
  X(SSL_CTX_set_session_id_context)       \
  X(SSL_CTX_sess_set_new_cb)              \
  X(SSL_CTX_sess_set_get_cb)              \
  X(SSL_CTX_sess_set_remove_cb)           \
  X(SSL_CTX_set_info_callback)            \
  X(SSL_CTX_set_tlsext_ticket_key_evp_cb) \
  X(SSL_CTX_flush_sessions)               \
  X(SSL_CTX_add_session)                  \
  X(SSL_CTX_remove_session)               \
  X(SSL_CTX_set_ex_data)                  \
  X(SSL_CTX_get_ex_data)                  \
  X(SSL_select_next_proto)                \
  X(SSL_new)                              \
  X(SSL_free)                             \
  X(SSL_ctrl)                             \
  X(SSL_set_bio)                          \
  X(SSL_set_connect_state)                \
  X(SSL_set_accept_state)                 \
  X(SSL_do_handshake)                     \
  X(SSL_read_ex)                          \
  X(SSL_write_ex)                         \
  X(SSL_get_error)                        \
  X(SSL_shutdown)                         \
  X(SSL_get_shutdown)                     \
  X(SSL_is_init_finished)                 \
  X(SSL_get1_session)                     \
  X(SSL_get_session)                      \
  X(SSL_set_session)                      \
  X(SSL_session_reused)                   \
  X(SSL_get_version)                      \
  X(SSL_get_current_cipher)               \
  X(SSL_get1_peer_certificate)            \
  X(SSL_get0_alpn_selected)               \
  X(SSL_get_verify_result)                \
  X(SSL_set1_host)                        \
  X(SSL_set_ex_data)                      \
  X(SSL_get_ex_data)                      \
  X(SSL_get_SSL_CTX)                      \
  X(SSL_CTX_get_timeout)                  \
  X(SSL_CTX_set_default_verify_paths)     \
  X(SSL_get0_param)                       \
  X(SSL_CIPHER_standard_name)             \
  X(SSL_CIPHER_get_version)

// Functions exported by libcrypto.so.3.
#define TLS_SESSION_LIBCRYPTO_SYMBOLS(X) \
  X(OpenSSL_version)                     \
  X(OpenSSL_version_num)                 \
  X(CRYPTO_free)                         \
  X(CRYPTO_get_ex_new_index)             \
  X(ERR_get_error)                       \
  X(ERR_peek_error)                      \
  X(ERR_clear_error)                     \
  X(ERR_set_mark)                        \
  X(ERR_pop_to_mark)                     \
  X(ERR_error_string_n)                  \
  X(ERR_reason_error_string)             \
  X(i2d_X509)                            \
  X(X509_free)                           \
  X(X509_STORE_add_cert)                 \
  X(X509_verify_cert_error_string)       \
  X(PEM_read_bio_X509)                   \
  X(PEM_read_bio_PrivateKey)             \
  X(EVP_PKEY_free)                       \
  X(BIO_new)                             \
  X(BIO_new_mem_buf)                     \
  X(BIO_s_mem)                           \
  X(BIO_free)                            \
  X(BIO_read)                            \
  X(BIO_write)                           \
  X(BIO_ctrl)                            \
  X(BIO_ctrl_pending)                    \
  X(X509_VERIFY_PARAM_set1_ip_asc)       \
  X(OPENSSL_cleanse)                     \
  X(RAND_bytes)                          \
  X(EVP_aes_128_cbc)                     \
  X(EVP_aes_256_gcm)                     \
  X(EVP_CIPHER_CTX_new)                  \
  X(EVP_CIPHER_CTX_free)                 \
  X(EVP_CIPHER_CTX_ctrl)                 \
  X(EVP_EncryptInit_ex)                  \
  X(EVP_EncryptUpdate)                   \
  X(EVP_EncryptFinal_ex)                 \
  X(EVP_DecryptInit_ex)                  \
  X(EVP_DecryptUpdate)                   \
  X(EVP_DecryptFinal_ex)                 \
  X(EVP_MAC_CTX_set_params)              \
  X(OSSL_PARAM_construct_octet_string)   \
  X(OSSL_PARAM_construct_utf8_string)    \
  X(OSSL_PARAM_construct_end)

#endif  // TLS_SESSION_OPENSSL_SYMBOLS_H_
