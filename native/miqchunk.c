/*
 * The chunker's gear loop (store/chunker.ts `Chunker.cut`) in C: the same cut points, byte for
 * byte, about three times faster than the JS loop (bounds checks on two typed arrays per byte).
 * store/chunker.ts uses it when this addon loaded and keeps the JS loop otherwise; a unit test
 * compares both on the same bytes. No state: safe in every worker thread.
 */
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok) return 0;
  return t == want;
}

static int u32arg(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

/* cut(buf: Uint8Array, start, end, min, avg, max, maskS, maskL, gear: Int32Array) -> length */
static napi_value Cut(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *bufp = NULL, *gearp = NULL;
  size_t blen = 0, glen = 0;
  uint32_t start, end, min, avg, max, maskS, maskL;
  if (argc < 9 || !typed(env, argv[0], napi_uint8_array, &bufp, &blen) || !typed(env, argv[8], napi_int32_array, &gearp, &glen) || glen != 256 ||
      !u32arg(env, argv[1], &start) || !u32arg(env, argv[2], &end) || !u32arg(env, argv[3], &min) || !u32arg(env, argv[4], &avg) ||
      !u32arg(env, argv[5], &max) || !u32arg(env, argv[6], &maskS) || !u32arg(env, argv[7], &maskL) || start > end || end > blen) {
    napi_throw_type_error(env, NULL, "miqchunk.cut: bad arguments");
    return NULL;
  }
  const uint8_t *b = bufp;
  const uint32_t *G = gearp;
  uint32_t n = end - start, r = n;
  if (n > min) {
    if (n > max) n = max;
    uint32_t normal = n < avg ? n : avg;
    uint32_t h = 0;
    size_t i = (size_t)start + min;
    const size_t iNormal = (size_t)start + normal, iEnd = (size_t)start + n;
    r = n;
    for (; i < iNormal; i++) {
      h = (h << 1) + G[b[i]];
      if ((h & maskS) == 0) { r = (uint32_t)(i + 1 - start); goto done; }
    }
    for (; i < iEnd; i++) {
      h = (h << 1) + G[b[i]];
      if ((h & maskL) == 0) { r = (uint32_t)(i + 1 - start); goto done; }
    }
  }
done:;
  napi_value out;
  napi_create_uint32(env, r, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "cut", NAPI_AUTO_LENGTH, Cut, NULL, &fn);
  napi_set_named_property(env, exports, "cut", fn);
  return exports;
}
