/**
 * BusyBox, linked statically: a shell and core utilities that need nothing from the host, so
 * recipes can build without declaring the host toolchain (see recipes/README.md).
 */
import { recipe } from '../builder/recipe.js';

export default recipe({
  name: 'busybox',
  version: '1.35.0',
  sources: [{
    url: 'mirror://debian/pool/main/b/busybox/busybox_1.35.0.orig.tar.bz2',
    sha256: 'faeeb244c35a348a334f4a59e44626ee870fb07b6884d68c10ae8bc19f83a694',
  }],
  host: ['toolchain'],
  script: `
    tar xf "$src"
    cd busybox-1.35.0
    make defconfig >/dev/null
    sed -i -e 's/^# CONFIG_STATIC is not set$/CONFIG_STATIC=y/' .config
    make -j"$MIQ_CORES" KBUILD_BUILD_TIMESTAMP=@"$SOURCE_DATE_EPOCH" KBUILD_BUILD_USER=miq KBUILD_BUILD_HOST=miq
    make install CONFIG_PREFIX="$out" >/dev/null
    rm -f "$out/linuxrc"
  `,
});
