/**
 * file(1) and libmagic, linked against miq's zlib (not the host's): the dependency chain. The
 * run-path points into /miq/store, so the zlib store path is in file's closure.
 */
import { recipe } from '../builder/recipe.js';
import zlib from './zlib.js';

export default recipe({
  name: 'file',
  version: '5.44',
  sources: [{
    url: 'mirror://debian/pool/main/f/file/file_5.44.orig.tar.gz',
    sha256: '3751c7fba8dbc831cb8d7cc8aff21035459b8ce5155ef8b0880a27d028475f3b',
  }],
  runDeps: [zlib],
  host: ['toolchain'],
  script: `
    tar xf "$src"
    cd file-5.44
    ./configure --prefix="$out" --enable-zlib --disable-bzlib --disable-xzlib --disable-zstdlib \\
      --disable-lzlib --disable-libseccomp --disable-static \\
      LDFLAGS="-L$zlib/lib -Wl,-rpath,$zlib/lib" CPPFLAGS="-I$zlib/include"
    make -j"$MIQ_CORES"
    make install
  `,
});
