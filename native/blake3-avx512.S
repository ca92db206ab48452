/* BLAKE3's x86-64 (System V) avx512 assembly from Debian's librust-blake3-dev: see blake3-lib.c. */
#include "blake3_avx512_x86-64_unix.S"
