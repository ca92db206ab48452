/* BLAKE3's official C implementation, compiled from where Debian's librust-blake3-dev installs
 * its source (binding.gyp finds /usr/share/cargo/registry/blake3-*\/c and puts it on the include
 * path); nothing of it is copied into this tree. Used by miqchunk.c's hashFiles. */
#include "blake3.c"
#include "blake3_dispatch.c"
#include "blake3_portable.c"
