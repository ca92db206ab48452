/** Lua 5.4: a small interpreter with a plain Makefile (no configure). */
import { recipe } from '../builder/recipe.js';

export default recipe({
  name: 'lua',
  version: '5.4.4',
  sources: [{
    url: 'mirror://debian/pool/main/l/lua5.4/lua5.4_5.4.4.orig.tar.gz',
    sha256: '164c7849653b80ae67bec4b7473b884bf5cc8d2dca05653475ec2ed27b9ebf61',
  }],
  host: ['toolchain'],
  script: `
    tar xf "$src"
    cd lua-5.4.4
    make -j"$MIQ_CORES" linux
    make install INSTALL_TOP="$out"
  `,
});
