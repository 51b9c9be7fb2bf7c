#!/usr/bin/env python3
"""An independent Noise peer for USP's interop tests, built on PyPI `noiseprotocol` 0.3.1 (import `noise`).

Usage:
  noise_peer.py --protocol Noise_XX_25519_ChaChaPoly_SHA256 --role initiator|responder
                [--static HEX] [--remote-static HEX] [--prologue HEX]
  noise_peer.py --check      exit 0 if the `noise` module imports, 3 otherwise

Line protocol (one line each way, ASCII, hex payloads):
  The peer writes on stdout:
    ready                       after setup
    msg <hex>                   a handshake message it wrote (payload b"python handshake <i>")
    payload <hex>               the payload it decrypted from a handshake message it read
    hash <hex>                  the handshake hash, once the handshake is finished
    transport <hex>             a transport message: b"python got: " + the plaintext it just decrypted
    rekeyed                     after rekeying both directions
    error <text>                on any failure; then it exits with status 1
  The peer reads on stdin:
    <hex>                       a handshake message, then transport messages to decrypt
    rekey                       rekey the inbound and outbound ciphers (after the handshake)
    quit (or EOF)               exit 0
Standard library and noiseprotocol only.
"""

import argparse
import sys


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def read_line():
    line = sys.stdin.readline()
    if not line:
        return None
    return line.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--protocol")
    parser.add_argument("--role", choices=["initiator", "responder"])
    parser.add_argument("--static")
    parser.add_argument("--remote-static")
    parser.add_argument("--prologue", default="")
    args = parser.parse_args()

    try:
        from noise.connection import Keypair, NoiseConnection
    except ImportError as exc:
        if args.check:
            sys.stderr.write("noise module missing: %s\n" % exc)
            return 3
        out("error noise module missing: %s" % exc)
        return 3
    if args.check:
        return 0
    if not args.protocol or not args.role:
        parser.error("--protocol and --role are required")

    try:
        conn = NoiseConnection.from_name(args.protocol.encode("ascii"))
        if args.role == "initiator":
            conn.set_as_initiator()
        else:
            conn.set_as_responder()
        if args.static:
            conn.set_keypair_from_private_bytes(Keypair.STATIC, bytes.fromhex(args.static))
        if args.remote_static:
            conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, bytes.fromhex(args.remote_static))
        conn.set_prologue(bytes.fromhex(args.prologue))
        conn.start_handshake()
        out("ready")

        my_turn = args.role == "initiator"
        index = 0
        while not conn.handshake_finished:
            if my_turn:
                message = conn.write_message(b"python handshake %d" % index)
                out("msg " + bytes(message).hex())
            else:
                line = read_line()
                if line is None or line == "quit":
                    return 0
                payload = conn.read_message(bytes.fromhex(line))
                out("payload " + bytes(payload).hex())
            my_turn = not my_turn
            index += 1
        out("hash " + bytes(conn.get_handshake_hash()).hex())

        while True:
            line = read_line()
            if line is None or line == "quit":
                return 0
            if line == "rekey":
                conn.rekey_inbound_cipher()
                conn.rekey_outbound_cipher()
                out("rekeyed")
                continue
            plaintext = conn.decrypt(bytes.fromhex(line))
            out("transport " + conn.encrypt(b"python got: " + bytes(plaintext)).hex())
    except Exception as exc:  # report every failure to the Swift side on one line
        out("error %s: %s" % (type(exc).__name__, str(exc).replace("\n", " ")))
        return 1


if __name__ == "__main__":
    sys.exit(main())
