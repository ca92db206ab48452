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
      "sources": ["native/miqchunk.c"],
      "cflags": ["-std=gnu11", "-O3", "-Wall"]
    }
  ]
}
