/** bzip2 and libbz2: a plain Makefile, no configure. */
import { recipe } from '../builder/recipe.js';

export default recipe({
  name: 'bzip2',
  version: '1.0.8',
  sources: [{
    url: 'mirror://debian/pool/main/b/bzip2/bzip2_1.0.8.orig.tar.gz',
    sha256: 'ab5a03176ee106d3f0fa90e381da478ddae405918153cca248e682cd0c4a2269',
  }],
  host: ['toolchain'],
  script: `
    tar xf "$src"
    cd bzip2-1.0.8
    make -j"$MIQ_CORES"
    make install PREFIX="$out"
  `,
});
