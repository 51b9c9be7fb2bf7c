#include "usp_aead.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

/// Copies of a Swift `CipherState` (which is Sendable) share one context, so every operation on it
/// holds `lock`: EVP_CIPHER_CTX keeps per-operation state and is not safe to use from two threads.
struct usp_aead {
    EVP_CIPHER_CTX *ctx;
    pthread_mutex_t lock;
};

static void noise_nonce(uint64_t n, uint8_t iv[12]) {
    memset(iv, 0, 4);
    for (int i = 0; i < 8; i++) {
        iv[4 + i] = (uint8_t)(n >> (8 * i));
    }
}

usp_aead *usp_aead_new(const uint8_t key[32]) {
    usp_aead *a = OPENSSL_zalloc(sizeof(*a));
    if (a == NULL) return NULL;
    if (pthread_mutex_init(&a->lock, NULL) != 0) { OPENSSL_free(a); return NULL; }
    a->ctx = EVP_CIPHER_CTX_new();
    if (a->ctx == NULL) { usp_aead_free(a); return NULL; }
    if (EVP_CipherInit_ex(a->ctx, EVP_chacha20_poly1305(), NULL, key, NULL, 1) != 1) {
        usp_aead_free(a);
        return NULL;
    }
    return a;
}

void usp_aead_free(usp_aead *a) {
    if (a == NULL) return;
    EVP_CIPHER_CTX_free(a->ctx);
    pthread_mutex_destroy(&a->lock);
    OPENSSL_free(a);
}

static int run(usp_aead *a, int enc, uint64_t nonce, const uint8_t *ad, size_t ad_len,
               const uint8_t *in, uint8_t *out, size_t len) {
    uint8_t iv[12];
    int outl = 0;
    noise_nonce(nonce, iv);
    if (EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, iv, enc) != 1) return 0;
    if (ad_len > 0 && EVP_CipherUpdate(a->ctx, NULL, &outl, ad, (int)ad_len) != 1) return 0;
    if (len > 0 && EVP_CipherUpdate(a->ctx, out, &outl, in, (int)len) != 1) return 0;
    return 1;
}

static int seal_locked(usp_aead *a, uint64_t nonce, const uint8_t *ad, size_t ad_len,
                       const uint8_t *in, uint8_t *out, size_t len, uint8_t tag[16]) {
    int outl = 0;
    if (!run(a, 1, nonce, ad, ad_len, in, out, len)) return 0;
    if (EVP_CipherFinal_ex(a->ctx, out + len, &outl) != 1) return 0;
    if (EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1) return 0;
    return 1;
}

int usp_aead_seal(usp_aead *a, uint64_t nonce, const uint8_t *ad, size_t ad_len,
                  const uint8_t *in, uint8_t *out, size_t len, uint8_t tag[16]) {
    if (len > INT32_MAX || ad_len > INT32_MAX) return 0;
    pthread_mutex_lock(&a->lock);
    int ok = seal_locked(a, nonce, ad, ad_len, in, out, len, tag);
    pthread_mutex_unlock(&a->lock);
    return ok;
}

int usp_aead_open(usp_aead *a, uint64_t nonce, const uint8_t *ad, size_t ad_len,
                  const uint8_t *in, uint8_t *out, size_t len, const uint8_t tag[16]) {
    int outl = 0;
    uint8_t t[16];
    if (len > INT32_MAX || ad_len > INT32_MAX) return 0;
    memcpy(t, tag, 16);
    pthread_mutex_lock(&a->lock);
    if (!run(a, 0, nonce, ad, ad_len, in, out, len)) goto fail;
    if (EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, 16, t) != 1) goto fail;
    if (EVP_CipherFinal_ex(a->ctx, out + len, &outl) != 1) goto fail;
    pthread_mutex_unlock(&a->lock);
    return 1;
fail:
    pthread_mutex_unlock(&a->lock);
    if (len > 0) OPENSSL_cleanse(out, len);
    return 0;
}

int usp_ct_equal(const void *a, const void *b, size_t len) {
    return CRYPTO_memcmp(a, b, len) == 0 ? 1 : 0;
}

void usp_secure_zero(void *p, size_t len) {
    OPENSSL_cleanse(p, len);
}
