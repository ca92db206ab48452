{
  "targets": [
    {
      "target_name": "miqfuse",
      "sources": ["native/miqfuse.c"],
      "cflags": ["<!@(pkg-config --cflags fuse3)", "-std=gnu11", "-O2", "-Wall", "-Wno-unused-parameter"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    },
    {
      "target_name": "miqchunk",
      "sources": ["native/miqchunk.c", "native/blake3/blake3.c", "native/blake3/blake3_dispatch.c", "native/blake3/blake3_portable.c"],
      "cflags": ["-std=gnu11", "-O3", "-Wall"],
      "conditions": [
        ["target_arch=='x64'", {
          "sources": [
            "native/blake3/blake3_sse2_x86-64_unix.S",
            "native/blake3/blake3_sse41_x86-64_unix.S",
            "native/blake3/blake3_avx2_x86-64_unix.S",
            "native/blake3/blake3_avx512_x86-64_unix.S"
          ]
        }, {
          "defines": ["BLAKE3_NO_SSE2", "BLAKE3_NO_SSE41", "BLAKE3_NO_AVX2", "BLAKE3_NO_AVX512", "BLAKE3_USE_NEON=0"]
        }]
      ]
    }
  ]
}
