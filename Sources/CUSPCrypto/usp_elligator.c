// Elligator 2 for Curve25519 over GF(2^255 - 19), in radix 2^51 with 128-bit products.
// Only what the maps need: no scalar multiplication (X25519 itself is swift-crypto's).
#include "usp_elligator.h"
#include "usp_aead.h"

#include <string.h>

typedef unsigned __int128 u128;
typedef struct { uint64_t v[5]; } fe;

#define MASK51 ((uint64_t)0x7ffffffffffffULL)

static uint64_t load64_le(const uint8_t *p) {
    uint64_t r = 0;
    for (int i = 7; i >= 0; i--) r = (r << 8) | p[i];
    return r;
}

static void store64_le(uint8_t *p, uint64_t x) {
    for (int i = 0; i < 8; i++) { p[i] = (uint8_t)x; x >>= 8; }
}

/// Reads 255 bits (bit 255 is ignored); the value may be ≥ p, which the arithmetic tolerates.
static void fe_frombytes(fe *h, const uint8_t s[32]) {
    uint64_t w0 = load64_le(s), w1 = load64_le(s + 8), w2 = load64_le(s + 16), w3 = load64_le(s + 24);
    h->v[0] = w0 & MASK51;
    h->v[1] = ((w0 >> 51) | (w1 << 13)) & MASK51;
    h->v[2] = ((w1 >> 38) | (w2 << 26)) & MASK51;
    h->v[3] = ((w2 >> 25) | (w3 << 39)) & MASK51;
    h->v[4] = (w3 >> 12) & MASK51;
}

/// Brings every limb below 2^51 (plus a little in limb 0), folding the top carry back with 19.
static void fe_carry(fe *h) {
    uint64_t c;
    c = h->v[0] >> 51; h->v[0] &= MASK51; h->v[1] += c;
    c = h->v[1] >> 51; h->v[1] &= MASK51; h->v[2] += c;
    c = h->v[2] >> 51; h->v[2] &= MASK51; h->v[3] += c;
    c = h->v[3] >> 51; h->v[3] &= MASK51; h->v[4] += c;
    c = h->v[4] >> 51; h->v[4] &= MASK51; h->v[0] += c * 19;
}

/// Canonical encoding: the unique value in [0, p).
static void fe_tobytes(uint8_t s[32], const fe *f) {
    fe t = *f;
    fe_carry(&t);
    fe_carry(&t);
    fe_carry(&t);
    // Every limb is below 2^51 and t < 2^255 now. Adding 19 carries out of bit 255 exactly when t >= p.
    uint64_t q = (t.v[0] + 19) >> 51;
    q = (t.v[1] + q) >> 51;
    q = (t.v[2] + q) >> 51;
    q = (t.v[3] + q) >> 51;
    q = (t.v[4] + q) >> 51;
    t.v[0] += 19 * q;
    uint64_t c;
    c = t.v[0] >> 51; t.v[0] &= MASK51; t.v[1] += c;
    c = t.v[1] >> 51; t.v[1] &= MASK51; t.v[2] += c;
    c = t.v[2] >> 51; t.v[2] &= MASK51; t.v[3] += c;
    c = t.v[3] >> 51; t.v[3] &= MASK51; t.v[4] += c;
    t.v[4] &= MASK51;
    store64_le(s, t.v[0] | (t.v[1] << 51));
    store64_le(s + 8, (t.v[1] >> 13) | (t.v[2] << 38));
    store64_le(s + 16, (t.v[2] >> 26) | (t.v[3] << 25));
    store64_le(s + 24, (t.v[3] >> 39) | (t.v[4] << 12));
}

static void fe_0(fe *h) { memset(h, 0, sizeof(*h)); }
static void fe_1(fe *h) { fe_0(h); h->v[0] = 1; }
static void fe_small(fe *h, uint64_t x) { fe_0(h); h->v[0] = x; }

static void fe_add(fe *h, const fe *f, const fe *g) {
    for (int i = 0; i < 5; i++) h->v[i] = f->v[i] + g->v[i];
    fe_carry(h);
}

/// f - g, computed as f + 4p - g so that no limb goes negative (g's limbs are below 2^52).
static void fe_sub(fe *h, const fe *f, const fe *g) {
    h->v[0] = f->v[0] + 0x1fffffffffffb4ULL - g->v[0];
    for (int i = 1; i < 5; i++) h->v[i] = f->v[i] + 0x1ffffffffffffcULL - g->v[i];
    fe_carry(h);
}

static void fe_neg(fe *h, const fe *f) {
    fe z;
    fe_0(&z);
    fe_sub(h, &z, f);
}

/// Carries five 128-bit column sums of a product into limbs below 2^51 (plus a little in limb 1).
static void fe_reduce_wide(fe *h, u128 r0, u128 r1, u128 r2, u128 r3, u128 r4) {
    r1 += (uint64_t)(r0 >> 51);
    r2 += (uint64_t)(r1 >> 51);
    r3 += (uint64_t)(r2 >> 51);
    r4 += (uint64_t)(r3 >> 51);
    u128 top = (u128)(uint64_t)(r4 >> 51) * 19 + ((uint64_t)r0 & MASK51);
    h->v[0] = (uint64_t)top & MASK51;
    h->v[1] = ((uint64_t)r1 & MASK51) + (uint64_t)(top >> 51);
    h->v[2] = (uint64_t)r2 & MASK51;
    h->v[3] = (uint64_t)r3 & MASK51;
    h->v[4] = (uint64_t)r4 & MASK51;
}

static void fe_mul(fe *h, const fe *f, const fe *g) {
    uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    uint64_t g0 = g->v[0], g1 = g->v[1], g2 = g->v[2], g3 = g->v[3], g4 = g->v[4];
    uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
    u128 r0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 + (u128)f4 * g1_19;
    u128 r1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 + (u128)f4 * g2_19;
    u128 r2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 + (u128)f4 * g3_19;
    u128 r3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 + (u128)f4 * g4_19;
    u128 r4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 + (u128)f4 * g0;
    fe_reduce_wide(h, r0, r1, r2, r3, r4);
}

/// f^2: the products of fe_mul with the symmetric ones counted once, doubled.
static void fe_sq(fe *h, const fe *f) {
    uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    uint64_t d0 = 2 * f0, d1 = 2 * f1;
    uint64_t f3_19 = 19 * f3, f3_38 = 38 * f3, f4_19 = 19 * f4, f4_38 = 38 * f4;
    u128 r0 = (u128)f0 * f0 + (u128)f1 * f4_38 + (u128)f2 * f3_38;
    u128 r1 = (u128)d0 * f1 + (u128)f2 * f4_38 + (u128)f3 * f3_19;
    u128 r2 = (u128)d0 * f2 + (u128)f1 * f1 + (u128)f3 * f4_38;
    u128 r3 = (u128)d0 * f3 + (u128)d1 * f2 + (u128)f4 * f4_19;
    u128 r4 = (u128)d0 * f4 + (u128)d1 * f3 + (u128)f2 * f2;
    fe_reduce_wide(h, r0, r1, r2, r3, r4);
}

static void fe_mul_small(fe *h, const fe *f, uint32_t c) {
    fe k;
    fe_small(&k, c);
    fe_mul(h, f, &k);
}

/// h = b ? g : h, without a branch.
static void fe_ccopy(fe *h, const fe *g, int b) {
    uint64_t mask = (uint64_t)0 - (uint64_t)(b & 1);
    for (int i = 0; i < 5; i++) h->v[i] ^= mask & (h->v[i] ^ g->v[i]);
}

static int fe_isequal(const fe *f, const fe *g) {
    uint8_t a[32], b[32];
    fe_tobytes(a, f);
    fe_tobytes(b, g);
    return usp_ct_equal(a, b, 32);
}

static int fe_isodd(const fe *f) {
    uint8_t s[32];
    fe_tobytes(s, f);
    return s[0] & 1;
}

static const uint8_t sqrtm1_bytes[32] = {
    0xb0, 0xa0, 0x0e, 0x4a, 0x27, 0x1b, 0xee, 0xc4, 0x78, 0xe4, 0x2f, 0xad, 0x06, 0x18, 0x43, 0x2f,
    0xa7, 0xd7, 0xfb, 0x3d, 0x99, 0x00, 0x4d, 0x2b, 0x0b, 0xdf, 0xc1, 0x4f, 0x80, 0x24, 0x83, 0x2b,
};
/// -2 * sqrt(-1): the non-square 2 times sqrt(-1), negated.
static const uint8_t ufactor_bytes[32] = {
    0x8d, 0xbe, 0xe2, 0x6b, 0xb1, 0xc9, 0x23, 0x76, 0x0e, 0x37, 0xa0, 0xa5, 0xf2, 0xcf, 0x79, 0xa1,
    0xb1, 0x50, 0x08, 0x84, 0xcd, 0xfe, 0x65, 0xa9, 0xe9, 0x41, 0x7c, 0x60, 0xff, 0xb6, 0xf9, 0x28,
};
#define CURVE_A 486662u

/// isr = 1/sqrt(x) when x is a non-zero square (returns 1), sqrt(sqrt(-1)/x) when it is not
/// (returns 0); x = 0 gives isr = 0 and returns 1. The exponent is (p-5)/8.
static int invsqrt(fe *isr, const fe *x) {
    fe t0, t1, t2, sqrtm1;
    fe_sq(&t0, x);
    fe_sq(&t1, &t0); fe_sq(&t1, &t1); fe_mul(&t1, x, &t1);
    fe_mul(&t0, &t0, &t1);
    fe_sq(&t0, &t0); fe_mul(&t0, &t1, &t0);
    fe_sq(&t1, &t0); for (int i = 1; i < 5; i++) fe_sq(&t1, &t1); fe_mul(&t0, &t1, &t0);
    fe_sq(&t1, &t0); for (int i = 1; i < 10; i++) fe_sq(&t1, &t1); fe_mul(&t1, &t1, &t0);
    fe_sq(&t2, &t1); for (int i = 1; i < 20; i++) fe_sq(&t2, &t2); fe_mul(&t1, &t2, &t1);
    fe_sq(&t1, &t1); for (int i = 1; i < 10; i++) fe_sq(&t1, &t1); fe_mul(&t0, &t1, &t0);
    fe_sq(&t1, &t0); for (int i = 1; i < 50; i++) fe_sq(&t1, &t1); fe_mul(&t1, &t1, &t0);
    fe_sq(&t2, &t1); for (int i = 1; i < 100; i++) fe_sq(&t2, &t2); fe_mul(&t1, &t2, &t1);
    fe_sq(&t1, &t1); for (int i = 1; i < 50; i++) fe_sq(&t1, &t1); fe_mul(&t0, &t1, &t0);
    fe_sq(&t0, &t0); for (int i = 1; i < 2; i++) fe_sq(&t0, &t0); fe_mul(&t0, &t0, x);

    // quartic = x^((p-1)/4): 1 or -1 for a square, ±sqrt(-1) for a non-square.
    fe quartic, check;
    fe_sq(&quartic, &t0);
    fe_mul(&quartic, &quartic, x);
    fe_frombytes(&sqrtm1, sqrtm1_bytes);
    fe_0(&check);            int z0 = fe_isequal(x, &check);
    fe_1(&check);            int p1 = fe_isequal(&quartic, &check);
    fe_neg(&check, &check);  int m1 = fe_isequal(&quartic, &check);
    fe_neg(&check, &sqrtm1); int ms = fe_isequal(&quartic, &check);
    fe_mul(isr, &t0, &sqrtm1);
    fe_ccopy(isr, &t0, 1 - (m1 | ms));
    usp_secure_zero(&t0, sizeof t0);
    usp_secure_zero(&t1, sizeof t1);
    usp_secure_zero(&t2, sizeof t2);
    return p1 | m1 | z0;
}

void usp_elligator_map(uint8_t out[32], const uint8_t representative[32]) {
    uint8_t masked[32];
    memcpy(masked, representative, 32);
    masked[31] &= 0x3f;  // a representative has 254 bits
    fe r, u, t1, t2, t3, k, one, ufactor;
    fe_frombytes(&r, masked);
    fe_1(&one);
    fe_frombytes(&ufactor, ufactor_bytes);
    fe_sq(&r, &r);
    fe_add(&t1, &r, &r);                    // t1 = 2r^2 (non-square 2)
    fe_add(&u, &t1, &one);                  // u = 1 + 2r^2
    fe_sq(&t2, &u);
    fe_small(&k, (uint64_t)CURVE_A * CURVE_A);
    fe_mul(&t3, &k, &t1);
    fe_sub(&t3, &t3, &t2);
    fe_mul_small(&t3, &t3, CURVE_A);        // t3 = (A^2 * 2r^2 - (1 + 2r^2)^2) * A
    fe_mul(&t1, &t2, &u);
    fe_mul(&t1, &t3, &t1);
    int is_square = invsqrt(&t1, &t1);
    fe_mul(&u, &r, &ufactor);
    fe_ccopy(&u, &one, is_square);
    fe_sq(&t1, &t1);
    fe_mul_small(&u, &u, CURVE_A);
    fe_mul(&u, &u, &t3);
    fe_mul(&u, &u, &t2);
    fe_mul(&u, &u, &t1);
    fe_neg(&u, &u);
    fe_tobytes(out, &u);
}

/// The representative of u = num/den, with tweak as in usp_elligator_rev. Writes and returns 1 when
/// there is one. Working on a fraction spares the caller an inversion.
static int rev_fraction(uint8_t representative[32], const fe *num, const fe *den, uint8_t tweak) {
    fe a, t1, t3, neg;
    // u + A = (num + A*den) / den; -2 u (u + A) = -2 num (num + A den) / den^2, so
    // isr = invsqrt(-2 num (num + A den)) = invsqrt(-2 u (u + A)) / den (up to sign).
    fe_mul_small(&a, den, CURVE_A);
    fe_add(&a, &a, num);                    // a = num + A den
    fe_mul(&t3, num, &a);
    fe_mul_small(&t3, &t3, 2);
    fe_neg(&t3, &t3);
    int is_square = invsqrt(&t3, &t3);
    if (!is_square) return 0;
    // v "positive" (tweak bit 0 clear): r = u * invsqrt(-2u(u+A)) = num * isr;
    // otherwise r = (u + A) * invsqrt(-2u(u+A)) = (num + A den) * isr.
    t1 = *num;
    fe_ccopy(&t1, &a, tweak & 1);
    fe_mul(&t3, &t1, &t3);
    // Keep the root in [0, (p-1)/2]: 2r is odd exactly when r > (p-1)/2.
    fe_mul_small(&t1, &t3, 2);
    fe_neg(&neg, &t3);
    fe_ccopy(&t3, &neg, fe_isodd(&t1));
    fe_tobytes(representative, &t3);
    representative[31] |= tweak & 0xc0;
    return 1;
}

int usp_elligator_rev(uint8_t representative[32], const uint8_t u_bytes[32], uint8_t tweak) {
    fe u, one;
    fe_frombytes(&u, u_bytes);
    fe_1(&one);
    return rev_fraction(representative, &u, &one, tweak);
}

/// u^3 + A u^2 + u: the right-hand side of the curve equation v^2 = u^3 + A u^2 + u.
static void curve_rhs(fe *rhs, const fe *u) {
    fe t;
    fe_sq(&t, u);
    fe_mul_small(rhs, u, CURVE_A);
    fe_add(rhs, rhs, &t);
    fe_1(&t);
    fe_add(rhs, rhs, &t);
    fe_mul(rhs, rhs, u);
}

/// The curve's 8-torsion subgroup: T[i] = i * T1 for a point T1 of order 8 (T[0], the identity, is
/// handled apart). Affine (u, v) on v^2 = u^3 + A u^2 + u. T[8-i] = -T[i] has the same u, so u is
/// listed for i = 0…4 only.
static const uint8_t torsion_u[5][32] = {
    {0},
    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
     0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
    {0x01},
    {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
     0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
    {0x00},
};
static const uint8_t torsion_v[8][32] = {
    {0},
    {0x1a, 0x7b, 0x50, 0x92, 0x83, 0x14, 0x87, 0x68, 0x4d, 0x1b, 0x80, 0xed, 0x29, 0xfc, 0x3b, 0x93,
     0x57, 0xb4, 0x28, 0xe6, 0x14, 0x2c, 0x48, 0x29, 0xa5, 0x83, 0x9e, 0x56, 0x29, 0xc1, 0x31, 0x39},
    {0xd8, 0xbb, 0x77, 0x63, 0x10, 0xb7, 0x5d, 0x16, 0x9c, 0x6c, 0xb5, 0xd7, 0x38, 0xee, 0xa5, 0x9c,
     0x10, 0x59, 0x0b, 0x28, 0x85, 0x58, 0xe0, 0x3d, 0x50, 0x3d, 0x56, 0x06, 0x68, 0x0b, 0x1b, 0x14},
    {0xb7, 0x65, 0x80, 0x04, 0x42, 0x38, 0x10, 0x0f, 0xdd, 0x68, 0xaa, 0x8e, 0x46, 0x43, 0xa4, 0x20,
     0x15, 0x50, 0xfb, 0x45, 0x00, 0xca, 0xc6, 0x31, 0x64, 0x8e, 0x45, 0x3d, 0x89, 0x93, 0xc5, 0x68},
    {0x00},
    {0x36, 0x9a, 0x7f, 0xfb, 0xbd, 0xc7, 0xef, 0xf0, 0x22, 0x97, 0x55, 0x71, 0xb9, 0xbc, 0x5b, 0xdf,
     0xea, 0xaf, 0x04, 0xba, 0xff, 0x35, 0x39, 0xce, 0x9b, 0x71, 0xba, 0xc2, 0x76, 0x6c, 0x3a, 0x17},
    {0x15, 0x44, 0x88, 0x9c, 0xef, 0x48, 0xa2, 0xe9, 0x63, 0x93, 0x4a, 0x28, 0xc7, 0x11, 0x5a, 0x63,
     0xef, 0xa6, 0xf4, 0xd7, 0x7a, 0xa7, 0x1f, 0xc2, 0xaf, 0xc2, 0xa9, 0xf9, 0x97, 0xf4, 0xe4, 0x6b},
    {0xd3, 0x84, 0xaf, 0x6d, 0x7c, 0xeb, 0x78, 0x97, 0xb2, 0xe4, 0x7f, 0x12, 0xd6, 0x03, 0xc4, 0x6c,
     0xa8, 0x4b, 0xd7, 0x19, 0xeb, 0xd3, 0xb7, 0xd6, 0x5a, 0x7c, 0x61, 0xa9, 0xd6, 0x3e, 0xce, 0x46},
};

/// u(P + T[i]) = num/den by the affine chord rule, P = (u, v) with v = sqrt(u^3 + A u^2 + u) (either
/// sign: the subgroup holds T and -T alike, so a uniform i gives a uniform coset member either way).
/// P is in the prime-order subgroup, so u differs from every T's u and the chord is defined.
static void add_torsion(fe *num, fe *den, const uint8_t public_key[32], uint8_t torsion) {
    int i = torsion & 7;
    fe u;
    fe_frombytes(&u, public_key);
    if (i == 0) {
        *num = u;
        fe_1(den);
        return;
    }
    fe rhs, t, v, ut, vt, dx, dy;
    curve_rhs(&rhs, &u);
    invsqrt(&t, &rhs);
    fe_mul(&v, &rhs, &t);                   // sqrt(rhs) = rhs / sqrt(rhs)
    fe_frombytes(&ut, torsion_u[i <= 4 ? i : 8 - i]);  // T[8-i] = -T[i]: same u, opposite v
    fe_frombytes(&vt, torsion_v[i]);
    fe_sub(&dy, &vt, &v);
    fe_sub(&dx, &ut, &u);
    // lambda = dy/dx; u3 = lambda^2 - A - u - ut = (dy^2 - (A + u + ut) dx^2) / dx^2
    fe_sq(den, &dx);
    fe_small(&t, CURVE_A);
    fe_add(&t, &t, &u);
    fe_add(&t, &t, &ut);
    fe_mul(&t, &t, den);
    fe_sq(num, &dy);
    fe_sub(num, num, &t);
}

int usp_elligator_hide(uint8_t representative[32], const uint8_t public_key[32], uint8_t torsion, uint8_t tweak) {
    fe num, den;
    add_torsion(&num, &den, public_key, torsion);
    return rev_fraction(representative, &num, &den, tweak);
}

void usp_curve25519_add_torsion(uint8_t out[32], const uint8_t public_key[32], uint8_t torsion) {
    fe num, den, inv;
    add_torsion(&num, &den, public_key, torsion);
    // 1/den = den * invsqrt(den^2)^2
    fe sq;
    fe_sq(&sq, &den);
    invsqrt(&inv, &sq);
    fe_sq(&inv, &inv);
    fe_mul(&inv, &inv, &den);
    fe_mul(&num, &num, &inv);
    fe_tobytes(out, &num);
}

int usp_curve25519_doubles_to_infinity(const uint8_t u_bytes[32], int times) {
    // x-only doubling: X2 = (X^2 - Z^2)^2, Z2 = 4XZ (X^2 + A XZ + Z^2)
    fe x, z, xx, zz, xz, t;
    fe_frombytes(&x, u_bytes);
    fe_1(&z);
    for (int i = 0; i < times; i++) {
        fe_sq(&xx, &x);
        fe_sq(&zz, &z);
        fe_mul(&xz, &x, &z);
        fe_sub(&t, &xx, &zz);
        fe_sq(&x, &t);
        fe_mul_small(&t, &xz, CURVE_A);
        fe_add(&t, &t, &xx);
        fe_add(&t, &t, &zz);
        fe_mul(&t, &t, &xz);
        fe_mul_small(&z, &t, 4);
    }
    fe zero;
    fe_0(&zero);
    return fe_isequal(&z, &zero);
}

int usp_curve25519_is_on_curve(const uint8_t u_bytes[32]) {
    fe u, rhs, isr;
    fe_frombytes(&u, u_bytes);
    curve_rhs(&rhs, &u);
    return invsqrt(&isr, &rhs);
}

static void fe_cswap(fe *f, fe *g, int b) {
    uint64_t mask = (uint64_t)0 - (uint64_t)(b & 1);
    for (int i = 0; i < 5; i++) {
        uint64_t x = mask & (f->v[i] ^ g->v[i]);
        f->v[i] ^= x;
        g->v[i] ^= x;
    }
}

int usp_curve25519_in_prime_subgroup(const uint8_t u_bytes[32]) {
    // The order of the prime-order subgroup, L = 2^252 + 27742317777372353535851937790883648493.
    static const uint8_t order[32] = {
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
    };
    // RFC 7748's ladder, unclamped: L * P is the point at infinity exactly when P is in the subgroup.
    fe x1, x2, z2, x3, z3, a, aa, b, bb, e, c, d, da, cb, t;
    fe_frombytes(&x1, u_bytes);
    fe_1(&x2); fe_0(&z2);
    x3 = x1; fe_1(&z3);
    int swap = 0;
    for (int pos = 252; pos >= 0; pos--) {
        int bit = (order[pos >> 3] >> (pos & 7)) & 1;
        swap ^= bit;
        fe_cswap(&x2, &x3, swap);
        fe_cswap(&z2, &z3, swap);
        swap = bit;
        fe_add(&a, &x2, &z2); fe_sq(&aa, &a);
        fe_sub(&b, &x2, &z2); fe_sq(&bb, &b);
        fe_sub(&e, &aa, &bb);
        fe_add(&c, &x3, &z3); fe_sub(&d, &x3, &z3);
        fe_mul(&da, &d, &a); fe_mul(&cb, &c, &b);
        fe_add(&t, &da, &cb); fe_sq(&x3, &t);
        fe_sub(&t, &da, &cb); fe_sq(&t, &t); fe_mul(&z3, &x1, &t);
        fe_mul(&x2, &aa, &bb);
        fe_mul_small(&t, &e, 121665); fe_add(&t, &t, &aa); fe_mul(&z2, &e, &t);
    }
    fe_cswap(&x2, &x3, swap);
    fe_cswap(&z2, &z3, swap);
    fe zero;
    fe_0(&zero);
    return fe_isequal(&z2, &zero);
}
