/** GNU make, built without guile and NLS. */
import { recipe } from '../builder/recipe.js';

export default recipe({
  name: 'make',
  version: '4.3',
  sources: [{
    url: 'mirror://debian/pool/main/m/make-dfsg/make-dfsg_4.3.orig.tar.gz',
    sha256: 'be4c17542578824e745f83bcd2a9ba264206187247cb6a5f5df99b0a9d1f9047',
  }],
  host: ['toolchain'],
  script: `
    tar xf "$src"
    cd make-dfsg-4.3
    ./configure --prefix="$out" --disable-nls --without-guile
    make -j"$MIQ_CORES"
    make install
  `,
});
