#include "usp_aead.h"

#include <stdlib.h>
#include <string.h>

// BoringSSL's AEAD interface, as swift-crypto (the Crypto product every target that uses this one
// links) builds it into the program with the CCryptoBoringSSL_ prefix. swift-crypto does not export
// its headers, so the few functions used are declared here; their signatures are BoringSSL's
// public <openssl/aead.h> ones. Being in the program already, they cost nothing at start-up: a
// shared libcrypto had to be loaded, relocated and initialised by every `usp connect`.
typedef struct evp_aead_st EVP_AEAD;
typedef struct evp_aead_ctx_st EVP_AEAD_CTX;
extern const EVP_AEAD *CCryptoBoringSSL_EVP_aead_chacha20_poly1305(void);
extern EVP_AEAD_CTX *CCryptoBoringSSL_EVP_AEAD_CTX_new(const EVP_AEAD *aead, const uint8_t *key, size_t key_len, size_t tag_len);
extern void CCryptoBoringSSL_EVP_AEAD_CTX_free(EVP_AEAD_CTX *ctx);
extern int CCryptoBoringSSL_EVP_AEAD_CTX_seal_scatter(const EVP_AEAD_CTX *ctx, uint8_t *out, uint8_t *out_tag, size_t *out_tag_len,
                                                      size_t max_out_tag_len, const uint8_t *nonce, size_t nonce_len,
                                                      const uint8_t *in, size_t in_len, const uint8_t *extra_in, size_t extra_in_len,
                                                      const uint8_t *ad, size_t ad_len);
extern int CCryptoBoringSSL_EVP_AEAD_CTX_open_gather(const EVP_AEAD_CTX *ctx, uint8_t *out, const uint8_t *nonce, size_t nonce_len,
                                                     const uint8_t *in, size_t in_len, const uint8_t *in_tag, size_t in_tag_len,
                                                     const uint8_t *ad, size_t ad_len);
extern int CCryptoBoringSSL_CRYPTO_memcmp(const void *a, const void *b, size_t len);
extern void CCryptoBoringSSL_OPENSSL_cleanse(void *ptr, size_t len);

/// The context is only read by seal and open (BoringSSL keeps no per-operation state in it), so
/// copies of a Swift `CipherState` on several threads may use one context without a lock.
struct usp_aead {
    EVP_AEAD_CTX *ctx;
};

static void noise_nonce(uint64_t n, uint8_t iv[12]) {
    memset(iv, 0, 4);
    for (int i = 0; i < 8; i++) {
        iv[4 + i] = (uint8_t)(n >> (8 * i));
    }
}

usp_aead *usp_aead_new(const uint8_t key[32]) {
    EVP_AEAD_CTX *ctx = CCryptoBoringSSL_EVP_AEAD_CTX_new(CCryptoBoringSSL_EVP_aead_chacha20_poly1305(), key, 32, 16);
    if (ctx == NULL) return NULL;
    usp_aead *a = malloc(sizeof(*a));
    if (a == NULL) {
        CCryptoBoringSSL_EVP_AEAD_CTX_free(ctx);
        return NULL;
    }
    a->ctx = ctx;
    return a;
}

void usp_aead_free(usp_aead *a) {
    if (a == NULL) return;
    CCryptoBoringSSL_EVP_AEAD_CTX_free(a->ctx);
    free(a);
}

int usp_aead_seal(usp_aead *a, uint64_t nonce, const uint8_t *ad, size_t ad_len,
                  const uint8_t *in, uint8_t *out, size_t len, uint8_t tag[16]) {
    uint8_t iv[12];
    size_t tag_len = 0;
    noise_nonce(nonce, iv);
    if (CCryptoBoringSSL_EVP_AEAD_CTX_seal_scatter(a->ctx, out, tag, &tag_len, 16, iv, 12, in, len, NULL, 0, ad, ad_len) != 1) return 0;
    return tag_len == 16;
}

int usp_aead_open(usp_aead *a, uint64_t nonce, const uint8_t *ad, size_t ad_len,
                  const uint8_t *in, uint8_t *out, size_t len, const uint8_t tag[16]) {
    uint8_t iv[12];
    noise_nonce(nonce, iv);
    if (CCryptoBoringSSL_EVP_AEAD_CTX_open_gather(a->ctx, out, iv, 12, in, len, tag, 16, ad, ad_len) == 1) return 1;
    if (len > 0) CCryptoBoringSSL_OPENSSL_cleanse(out, len);
    return 0;
}

int usp_ct_equal(const void *a, const void *b, size_t len) {
    return CCryptoBoringSSL_CRYPTO_memcmp(a, b, len) == 0 ? 1 : 0;
}

void usp_secure_zero(void *p, size_t len) {
    CCryptoBoringSSL_OPENSSL_cleanse(p, len);
}
