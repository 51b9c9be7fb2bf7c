#ifndef USP_ELLIGATOR_H
#define USP_ELLIGATOR_H

#include <stdint.h>

/// Elligator 2 on Curve25519 (Bernstein, Hamburg, Krasnova, Lange 2013), with the non-square 2 and
/// the conventions of Monocypher and obfs4: a representative is a field element in [0, (p-1)/2],
/// stored little-endian in 254 bits; the top two bits of byte 31 carry no meaning (a sender fills
/// them at random, a receiver ignores them). All values are 32 bytes, little-endian.

/// Direct map: representative -> Montgomery u-coordinate (canonical, < p). Defined for every
/// 32-byte input, so any 32 bytes read from the wire decode to a point on the curve.
void usp_elligator_map(uint8_t u[32], const uint8_t representative[32]);

/// Inverse map: u -> representative. Returns 1 and writes `representative` when the point has one,
/// 0 (and writes nothing) otherwise; which one exists depends only on `u`. Bit 0 of `tweak` picks
/// which of the two representatives (the sign of v); bits 6 and 7 become the representative's two
/// top bits.
int usp_elligator_rev(uint8_t representative[32], const uint8_t u[32], uint8_t tweak);

/// Hides an X25519 public key made the usual way (a multiple of the base point, so in the
/// prime-order subgroup): adds the low-order point number `torsion & 7` of the curve's 8-torsion
/// subgroup, then applies the inverse map to the sum. Returns 1 and writes `representative` when
/// the sum has a representative, 0 otherwise (the caller then tries a new key). Adding a low-order
/// point does not change any X25519 result (the private scalar is a multiple of 8), but it makes
/// the hidden key uniform over the whole curve rather than over its prime-order subgroup, which an
/// observer could otherwise test for.
int usp_elligator_hide(uint8_t representative[32], const uint8_t public_key[32], uint8_t torsion, uint8_t tweak);

/// The u-coordinate of public_key + T[torsion & 7], for tests (identity for 0).
void usp_curve25519_add_torsion(uint8_t u[32], const uint8_t public_key[32], uint8_t torsion);

/// Projective doubling of an x-only point, `times` times; returns 1 when the result is the point
/// at infinity (Z = 0). For tests of the torsion table.
int usp_curve25519_doubles_to_infinity(const uint8_t u[32], int times);

/// 1 when u is the u-coordinate of a point on Curve25519 (rather than on its twist). What an observer
/// computes to tell raw X25519 keys (always 1) from random bytes (1 about half the time).
int usp_curve25519_is_on_curve(const uint8_t u[32]);

/// 1 when the point with this u-coordinate is in the prime-order subgroup (L * P = infinity). Every
/// X25519 public key made from a private key is; a uniform curve point is with probability 1/8.
/// What an observer computes to tell Elligator-encoded clean keys from random bytes. Slow (a ladder).
int usp_curve25519_in_prime_subgroup(const uint8_t u[32]);

#endif
