#ifndef USP_AEAD_H
#define USP_AEAD_H

#include <stddef.h>
#include <stdint.h>

/// An AEAD context bound to one 32-byte key: ChaCha20-Poly1305 (RFC 8439) or AES-256-GCM.
/// Noise's nonce encoding is applied here: 4 zero bytes then the 64-bit counter, little-endian for
/// ChaCha20-Poly1305 and big-endian for AES-256-GCM.
typedef struct usp_aead usp_aead;

#define USP_AEAD_CHACHA20_POLY1305 0
#define USP_AEAD_AES_256_GCM 1

/// A ChaCha20-Poly1305 context. Returns NULL if the cipher cannot be set up (no memory).
usp_aead *usp_aead_new(const uint8_t key[32]);
/// A context for `cipher` (one of the enum above). Returns NULL for an unknown cipher or no memory.
usp_aead *usp_aead_new_cipher(const uint8_t key[32], int cipher);

/// 1 when this CPU runs AES-GCM in hardware (AES-NI and carry-less multiply, or ARMv8's AES and PMULL).
int usp_aes_hardware(void);
void usp_aead_free(usp_aead *ctx);

/// Seal and open may be called on one context from several threads at once.
/// Encrypts `len` bytes from `in` to `out` (which may be the same pointer) and writes the 16-byte tag.
/// Returns 1 on success, 0 on failure.
int usp_aead_seal(usp_aead *ctx, uint64_t nonce,
                  const uint8_t *ad, size_t ad_len,
                  const uint8_t *in, uint8_t *out, size_t len,
                  uint8_t tag[16]);

/// Decrypts `len` bytes from `in` to `out` (which may be the same pointer) and checks `tag`.
/// Returns 1 if the tag is good. On a bad tag returns 0 and zeroes `out`.
int usp_aead_open(usp_aead *ctx, uint64_t nonce,
                  const uint8_t *ad, size_t ad_len,
                  const uint8_t *in, uint8_t *out, size_t len,
                  const uint8_t tag[16]);

/// Constant-time comparison: returns 1 when equal, 0 otherwise.
int usp_ct_equal(const void *a, const void *b, size_t len);

/// Overwrites memory in a way the compiler may not elide.
void usp_secure_zero(void *p, size_t len);

#endif
