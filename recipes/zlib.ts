/** zlib: the compression library the other recipes link against (shared and static). */
import { recipe } from '../builder/recipe.js';

export default recipe({
  name: 'zlib',
  version: '1.2.13',
  sources: [{
    url: 'mirror://debian/pool/main/z/zlib/zlib_1.2.13.dfsg.orig.tar.bz2',
    sha256: '71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1',
  }],
  host: ['toolchain'],
  script: `
    tar xf "$src"
    cd zlib-1.2.13.dfsg
    ./configure --prefix="$out"
    make -j"$MIQ_CORES"
    make install
  `,
});
