#include "usp_aead.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// Two ciphers: ChaCha20-Poly1305 (RFC 8439), the handshake's and the default for records, and
// AES-256-GCM, which records use when both hellos offer it (docs/PROTOCOL.md §4.2). AES-256-GCM is
// always BoringSSL's: with AES-NI and carry-less multiply it is three to four times ChaCha's speed.
// ChaCha20-Poly1305 has two implementations, chosen per call by size:
//
// - BoringSSL's EVP_AEAD, as swift-crypto (the Crypto product every target that uses this one
//   links) builds it into the program with the CCryptoBoringSSL_ prefix. swift-crypto does not
//   export its headers, so the functions used are declared here with the signatures of BoringSSL's
//   public <openssl/aead.h>. It is in the program already: it costs nothing at start-up, so a
//   handshake and a short session (a `usp connect` that echoes a line) use it.
// - The system's OpenSSL 3 libcrypto, loaded with dlopen the first time a record of
//   `USP_AEAD_BULK_MIN` bytes or more is sealed or opened. Its AVX-512 code is about twice as fast
//   in bulk (about 4.5 against 2.2 GB/s on 16 KiB here), but loading, relocating and initialising
//   it cost every `usp connect` about 2 ms of CPU when it was linked. If it cannot be loaded,
//   BoringSSL does everything.
//
// Both compute the same function, so a record sealed by one opens with the other.
typedef struct evp_aead_st EVP_AEAD;
typedef struct evp_aead_ctx_st EVP_AEAD_CTX;
extern const EVP_AEAD *CCryptoBoringSSL_EVP_aead_chacha20_poly1305(void);
extern const EVP_AEAD *CCryptoBoringSSL_EVP_aead_aes_256_gcm(void);
extern int CCryptoBoringSSL_EVP_has_aes_hardware(void);
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

/// Records this long or longer go to OpenSSL when it loads.
#define USP_AEAD_BULK_MIN 2048

// The part of OpenSSL 3's EVP interface used, resolved with dlsym.
enum { OSSL_CTRL_AEAD_GET_TAG = 0x10, OSSL_CTRL_AEAD_SET_TAG = 0x11 };
static struct {
    void *(*ctx_new)(void);
    void (*ctx_free)(void *);
    const void *(*cipher)(void);
    int (*init)(void *ctx, const void *cipher, void *engine, const uint8_t *key, const uint8_t *iv, int enc);
    int (*update)(void *ctx, uint8_t *out, int *outl, const uint8_t *in, int inl);
    int (*final)(void *ctx, uint8_t *out, int *outl);
    int (*ctrl)(void *ctx, int type, int arg, void *ptr);
    int loaded;
} ossl;
static pthread_once_t ossl_once = PTHREAD_ONCE_INIT;

static void ossl_load(void) {
    void *lib = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) return;
    *(void **)&ossl.ctx_new = dlsym(lib, "EVP_CIPHER_CTX_new");
    *(void **)&ossl.ctx_free = dlsym(lib, "EVP_CIPHER_CTX_free");
    *(void **)&ossl.cipher = dlsym(lib, "EVP_chacha20_poly1305");
    *(void **)&ossl.init = dlsym(lib, "EVP_CipherInit_ex");
    *(void **)&ossl.update = dlsym(lib, "EVP_CipherUpdate");
    *(void **)&ossl.final = dlsym(lib, "EVP_CipherFinal_ex");
    *(void **)&ossl.ctrl = dlsym(lib, "EVP_CIPHER_CTX_ctrl");
    ossl.loaded = ossl.ctx_new && ossl.ctx_free && ossl.cipher && ossl.init && ossl.update && ossl.final && ossl.ctrl;
}

/// BoringSSL's context is only read by seal and open, so copies of a Swift `CipherState` on
/// several threads use it without a lock. OpenSSL's keeps per-operation state: it is made on first
/// use and every use holds `lock`.
struct usp_aead {
    EVP_AEAD_CTX *ctx;
    int cipher;      // USP_AEAD_CHACHA20_POLY1305 or USP_AEAD_AES_256_GCM
    uint8_t key[32];
    pthread_mutex_t lock;
    void *bulk;      // OpenSSL EVP_CIPHER_CTX, or NULL
    int bulk_failed; // OpenSSL could not be set up for this key: BoringSSL only
};

/// Noise's nonce encodings (Noise §12.3, §12.4): 32 zero bits, then the 64-bit counter,
/// little-endian for ChaChaPoly and big-endian for AESGCM.
static void noise_nonce(const usp_aead *a, uint64_t n, uint8_t iv[12]) {
    memset(iv, 0, 4);
    for (int i = 0; i < 8; i++) {
        if (a->cipher == USP_AEAD_AES_256_GCM) {
            iv[11 - i] = (uint8_t)(n >> (8 * i));
        } else {
            iv[4 + i] = (uint8_t)(n >> (8 * i));
        }
    }
}

usp_aead *usp_aead_new(const uint8_t key[32]) {
    return usp_aead_new_cipher(key, USP_AEAD_CHACHA20_POLY1305);
}

usp_aead *usp_aead_new_cipher(const uint8_t key[32], int cipher) {
    const EVP_AEAD *aead;
    switch (cipher) {
    case USP_AEAD_CHACHA20_POLY1305: aead = CCryptoBoringSSL_EVP_aead_chacha20_poly1305(); break;
    case USP_AEAD_AES_256_GCM: aead = CCryptoBoringSSL_EVP_aead_aes_256_gcm(); break;
    default: return NULL;
    }
    EVP_AEAD_CTX *ctx = CCryptoBoringSSL_EVP_AEAD_CTX_new(aead, key, 32, 16);
    if (ctx == NULL) return NULL;
    usp_aead *a = calloc(1, sizeof(*a));
    if (a == NULL || pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a);
        CCryptoBoringSSL_EVP_AEAD_CTX_free(ctx);
        return NULL;
    }
    a->ctx = ctx;
    a->cipher = cipher;
    memcpy(a->key, key, 32);
    return a;
}

void usp_aead_free(usp_aead *a) {
    if (a == NULL) return;
    CCryptoBoringSSL_EVP_AEAD_CTX_free(a->ctx);
    if (a->bulk != NULL) ossl.ctx_free(a->bulk);
    pthread_mutex_destroy(&a->lock);
    CCryptoBoringSSL_OPENSSL_cleanse(a->key, sizeof a->key);
    free(a);
}

/// OpenSSL's context for `a`, with `a->lock` held, or NULL (the lock not held) for BoringSSL.
static void *bulk_locked(usp_aead *a, size_t len, size_t ad_len) {
    if (a->cipher != USP_AEAD_CHACHA20_POLY1305) return NULL;
    if (len < USP_AEAD_BULK_MIN || len > INT32_MAX || ad_len > INT32_MAX) return NULL;
    pthread_once(&ossl_once, ossl_load);
    if (!ossl.loaded) return NULL;
    pthread_mutex_lock(&a->lock);
    if (a->bulk == NULL && !a->bulk_failed) {
        void *c = ossl.ctx_new();
        if (c != NULL && ossl.init(c, ossl.cipher(), NULL, a->key, NULL, 1) == 1) {
            a->bulk = c;
        } else {
            if (c != NULL) ossl.ctx_free(c);
            a->bulk_failed = 1;
        }
    }
    if (a->bulk == NULL) {
        pthread_mutex_unlock(&a->lock);
        return NULL;
    }
    return a->bulk;
}

static int bulk_run(void *c, int enc, const uint8_t iv[12], const uint8_t *ad, size_t ad_len,
                    const uint8_t *in, uint8_t *out, size_t len) {
    int outl = 0;
    if (ossl.init(c, NULL, NULL, NULL, iv, enc) != 1) return 0;
    if (ad_len > 0 && ossl.update(c, NULL, &outl, ad, (int)ad_len) != 1) return 0;
    return ossl.update(c, out, &outl, in, (int)len) == 1;
}

int usp_aead_seal(usp_aead *a, uint64_t nonce, const uint8_t *ad, size_t ad_len,
                  const uint8_t *in, uint8_t *out, size_t len, uint8_t tag[16]) {
    uint8_t iv[12];
    size_t tag_len = 0;
    noise_nonce(a, nonce, iv);
    void *c = bulk_locked(a, len, ad_len);
    if (c != NULL) {
        int outl = 0;
        int ok = bulk_run(c, 1, iv, ad, ad_len, in, out, len) && ossl.final(c, out + len, &outl) == 1
            && ossl.ctrl(c, OSSL_CTRL_AEAD_GET_TAG, 16, tag) == 1;
        pthread_mutex_unlock(&a->lock);
        return ok;
    }
    if (CCryptoBoringSSL_EVP_AEAD_CTX_seal_scatter(a->ctx, out, tag, &tag_len, 16, iv, 12, in, len, NULL, 0, ad, ad_len) != 1) return 0;
    return tag_len == 16;
}

int usp_aead_open(usp_aead *a, uint64_t nonce, const uint8_t *ad, size_t ad_len,
                  const uint8_t *in, uint8_t *out, size_t len, const uint8_t tag[16]) {
    uint8_t iv[12];
    noise_nonce(a, nonce, iv);
    void *c = bulk_locked(a, len, ad_len);
    if (c != NULL) {
        int outl = 0;
        uint8_t t[16];
        memcpy(t, tag, 16);
        int ok = bulk_run(c, 0, iv, ad, ad_len, in, out, len) && ossl.ctrl(c, OSSL_CTRL_AEAD_SET_TAG, 16, t) == 1
            && ossl.final(c, out + len, &outl) == 1;
        pthread_mutex_unlock(&a->lock);
        if (ok) return 1;
        if (len > 0) CCryptoBoringSSL_OPENSSL_cleanse(out, len);
        return 0;
    }
    if (CCryptoBoringSSL_EVP_AEAD_CTX_open_gather(a->ctx, out, iv, 12, in, len, tag, 16, ad, ad_len) == 1) return 1;
    if (len > 0) CCryptoBoringSSL_OPENSSL_cleanse(out, len);
    return 0;
}

int usp_aes_hardware(void) {
    return CCryptoBoringSSL_EVP_has_aes_hardware();
}

int usp_ct_equal(const void *a, const void *b, size_t len) {
    return CCryptoBoringSSL_CRYPTO_memcmp(a, b, len) == 0 ? 1 : 0;
}

void usp_secure_zero(void *p, size_t len) {
    CCryptoBoringSSL_OPENSSL_cleanse(p, len);
}
