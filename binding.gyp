{
  # BLAKE3 for miqchunk's hashFiles: the official C implementation as Debian ships it (its source
  # is in librust-blake3-dev, /usr/share/cargo/registry/blake3-*/c; .ci/run installs it). Without
  # it miqchunk builds without hashFiles and the ingest hashes known files from JS (MIQ_JS_HASH).
  "variables": {
    "blake3_c%": "<!(sh -c 'ls -d /usr/share/cargo/registry/blake3-*/c 2>/dev/null | sort -V | tail -n 1')"
  },
  "targets": [
    {
      "target_name": "miqfuse",
      "sources": ["native/miqfuse.c"],
      "cflags": ["<!@(pkg-config --cflags fuse3)", "-std=gnu11", "-O2", "-Wall", "-Wno-unused-parameter"],
      "libraries": ["<!@(pkg-config --libs fuse3)"],
      "conditions": [
        ["blake3_c!=''", {
          "defines": ["MIQ_HAVE_BLAKE3"],
          "include_dirs": ["<(blake3_c)"],
          "sources": ["native/blake3-lib.c"],
          "conditions": [
            ["target_arch=='x64'", {
              "sources": ["native/blake3-sse2.S", "native/blake3-sse41.S", "native/blake3-avx2.S", "native/blake3-avx512.S"]
            }, {
              "defines": ["BLAKE3_NO_SSE2", "BLAKE3_NO_SSE41", "BLAKE3_NO_AVX2", "BLAKE3_NO_AVX512", "BLAKE3_USE_NEON=0"]
            }]
          ]
        }]
      ]
    },
    {
      "target_name": "miqchunk",
      "sources": ["native/miqchunk.c"],
      "cflags": ["-std=gnu11", "-O3", "-Wall"],
      "conditions": [
        ["blake3_c!=''", {
          "defines": ["MIQ_HAVE_BLAKE3"],
          "include_dirs": ["<(blake3_c)"],
          "sources": ["native/blake3-lib.c"],
          "conditions": [
            ["target_arch=='x64'", {
              "sources": ["native/blake3-sse2.S", "native/blake3-sse41.S", "native/blake3-avx2.S", "native/blake3-avx512.S"]
            }, {
              "defines": ["BLAKE3_NO_SSE2", "BLAKE3_NO_SSE41", "BLAKE3_NO_AVX2", "BLAKE3_NO_AVX512", "BLAKE3_USE_NEON=0"]
            }]
          ]
        }]
      ]
    }
  ]
}
