/* BLAKE3's x86-64 (System V) sse41 assembly from Debian's librust-blake3-dev: see blake3-lib.c. */
#include "blake3_sse41_x86-64_unix.S"
