/** GNU hello: the smallest real autotools package; prints "Hello, world!". */
import { recipe } from '../builder/recipe.js';

export default recipe({
  name: 'hello',
  version: '2.10',
  sources: [{
    url: 'mirror://debian/pool/main/h/hello/hello_2.10.orig.tar.gz',
    sha256: '31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b',
  }],
  host: ['toolchain'],
  script: `
    tar xf "$src"
    cd hello-2.10
    ./configure --prefix="$out" --disable-nls
    make -j"$MIQ_CORES"
    make install
  `,
});
