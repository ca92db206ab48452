/*
 * The chunker's gear loop (store/chunker.ts `Chunker.cut`) in C: the same cut points, byte for
 * byte, about three times faster than the JS loop (bounds checks on two typed arrays per byte).
 * store/chunker.ts uses it when this addon loaded and keeps the JS loop otherwise; a unit test
 * compares both on the same bytes. No state: safe in every worker thread.
 *
 * And one directory of the ingest walk (store/walk-sync.ts `listDir`): its names, each one's
 * lstat (statx, as libuv makes it) and link target, packed, in one call instead of a readdir and
 * an lstatSync per entry (a Stats object and four Dates each in Node 20).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#ifdef MIQ_HAVE_BLAKE3
#include "blake3.h"
#endif

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

/* A growable byte buffer. */
typedef struct { char *p; size_t len, cap; } Buf;

static int put(Buf *b, const void *src, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + n) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) return 0;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
  return 1;
}

static napi_value typedCopy(napi_env env, napi_typedarray_type t, size_t elem, const Buf *b) {
  void *data;
  napi_value ab, out;
  napi_create_arraybuffer(env, b->len, &data, &ab);
  if (b->len) memcpy(data, b->p, b->len);
  napi_create_typedarray(env, t, b->len / elem, ab, 0, &out);
  return out;
}

/* errno's name ("ENOENT"), which ioError in store/errors.ts reads as `code`. strerrorname_np is
 * glibc 2.32+; elsewhere (musl) the common ones, and EIO for the rest. */
static const char *errName(int e) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(e);
  if (n) return n;
#else
  switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOTDIR: return "ENOTDIR";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
  }
#endif
  return "EIO";
}

static int64_t nowNs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct { const char *p; uint32_t len; } Name;

static int nameCmp(const void *a, const void *b) {
  const Name *x = a, *y = b;
  uint32_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->p, y->p, n);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Reorders `count` names (concatenated in `names`, ending at `ends`) into byte order. */
static int sortNames(Buf *names, Buf *ends, uint32_t count) {
  Name *v = malloc(count * sizeof *v);
  char *out = malloc(names->len);
  if (!v || !out) {
    free(v); free(out);
    return 0;
  }
  uint32_t *endv = (uint32_t *)ends->p;
  for (uint32_t i = 0, start = 0; i < count; start = endv[i], i++) v[i] = (Name){ names->p + start, endv[i] - start };
  qsort(v, count, sizeof *v, nameCmp);
  size_t at = 0;
  for (uint32_t i = 0; i < count; i++) {
    memcpy(out + at, v[i].p, v[i].len);
    at += v[i].len;
    endv[i] = (uint32_t)at;
  }
  free(v);
  free(names->p);
  names->p = out;
  names->cap = names->len;
  return 1;
}

/*
 * listDir(dir: Buffer, slowNs: number, maxSlow: number) -> [names, ends, done, num, targets,
 * targetEnds, error]: every name of `dir` but . and .. (`names` concatenated, `ends[i]` where
 * name i ends), and for the first `done` of them six numbers each in `num` (size, mode, dev,
 * ino, mtimeMs, ctimeMs, computed as Node's lstat does) and, for links, the target (`targets`,
 * `targetEnds`). Stops early after `maxSlow` calls that each took `slowNs` or more (maxSlow 0:
 * never), or at the first entry whose lstat or readlink failed: `error` is then its errno's
 * name and `done` that entry's index. A directory that cannot be read throws, with `code` the
 * errno's name.
 */
static napi_value ListDir(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *pathp;
  size_t plen;
  double slowNs = 0;
  uint32_t maxSlow = 0;
  if (argc < 3 || !typed(env, argv[0], napi_uint8_array, &pathp, &plen) || napi_get_value_double(env, argv[1], &slowNs) != napi_ok || !u32arg(env, argv[2], &maxSlow)) {
    napi_throw_type_error(env, NULL, "miqchunk.listDir: bad arguments");
    return NULL;
  }
  char *path = malloc(plen + 1);
  if (!path) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  memcpy(path, pathp, plen);
  path[plen] = 0;
  DIR *d = opendir(path);
  free(path);
  if (!d) {
    int e = errno;
    napi_throw_error(env, errName(e), strerror(e));
    return NULL;
  }
  Buf names = {0}, ends = {0}, num = {0}, targets = {0}, tends = {0};
  int ok = 1;
  uint32_t count = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) {
        int e = errno;
        closedir(d);
        free(names.p); free(ends.p);
        napi_throw_error(env, errName(e), strerror(e));
        return NULL;
      }
      break;
    }
    const char *n = de->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    uint32_t end;
    ok = ok && put(&names, n, strlen(n));
    end = (uint32_t)names.len;
    ok = ok && put(&ends, &end, sizeof end);
    count++;
  }
  /* Names in byte order, as libuv's scandir sorts them for readdirSync (strcmp), rather than
   * readdir's hash order: small files share compressed frames in the order the walk hands them
   * out, and neighbours by name compress better together (store/walk-sync.ts NAME_ORDER). */
  if (ok && count > 1) ok = sortNames(&names, &ends, count);
  int fd = dirfd(d);
  uint32_t done = 0, slow = 0;
  const char *err = NULL;
  char name[NAME_MAX + 1];
  char target[PATH_MAX];
  const uint32_t *endv = (const uint32_t *)ends.p;
  for (uint32_t i = 0; ok && i < count; i++) {
    uint32_t start = i ? endv[i - 1] : 0;
    memcpy(name, names.p + start, endv[i] - start);
    name[endv[i] - start] = 0;
    int64_t t0 = maxSlow > 0 ? nowNs() : 0;
    struct statx sx;
    if (statx(fd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &sx) != 0) {
      err = errName(errno);
      break;
    }
    if ((sx.stx_mode & S_IFMT) == S_IFLNK) {
      ssize_t tl = readlinkat(fd, name, target, sizeof target);
      if (tl < 0) {
        err = errName(errno);
        break;
      }
      uint32_t te;
      ok = ok && put(&targets, target, (size_t)tl);
      te = (uint32_t)targets.len;
      ok = ok && put(&tends, &te, sizeof te);
    }
    /* As libuv fills uv_stat_t from statx and Node turns it into lstat's numbers. */
    double v[6] = {
      (double)sx.stx_size,
      (double)sx.stx_mode,
      (double)makedev(sx.stx_dev_major, sx.stx_dev_minor),
      (double)sx.stx_ino,
      (double)sx.stx_mtime.tv_sec * 1000 + (double)sx.stx_mtime.tv_nsec / 1000000,
      (double)sx.stx_ctime.tv_sec * 1000 + (double)sx.stx_ctime.tv_nsec / 1000000,
    };
    ok = ok && put(&num, v, sizeof v);
    done = i + 1;
    if (maxSlow > 0 && (double)(nowNs() - t0) >= slowNs && ++slow >= maxSlow) break;
  }
  closedir(d);
  if (!ok) {
    free(names.p); free(ends.p); free(num.p); free(targets.p); free(tends.p);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  napi_value out, v;
  napi_create_array_with_length(env, 7, &out);
  void *bp;
  napi_create_buffer_copy(env, names.len, names.len ? names.p : "", &bp, &v);
  napi_set_element(env, out, 0, v);
  napi_set_element(env, out, 1, typedCopy(env, napi_uint32_array, 4, &ends));
  napi_create_uint32(env, done, &v);
  napi_set_element(env, out, 2, v);
  napi_set_element(env, out, 3, typedCopy(env, napi_float64_array, 8, &num));
  napi_create_buffer_copy(env, targets.len, targets.len ? targets.p : "", &bp, &v);
  napi_set_element(env, out, 4, v);
  napi_set_element(env, out, 5, typedCopy(env, napi_uint32_array, 4, &tends));
  if (err) napi_create_string_utf8(env, err, NAPI_AUTO_LENGTH, &v);
  else napi_get_null(env, &v);
  napi_set_element(env, out, 6, v);
  free(names.p); free(ends.p); free(num.p); free(targets.p); free(tends.p);
  return out;
}

/*
 * warmTree(root: Uint8Array, threads: number): reads every directory under `root` and lstats
 * every entry (results dropped) on `threads` detached threads of its own, and returns at once.
 * The ingest walk (store/walk-sync.ts) lists one directory at a time; on a tree whose metadata
 * the host has evicted (this host's DAMON pageout drops idle pages within seconds: the small
 * corpus's release N+1 was cold again by the time the benchmark ingested it) each getdents and
 * the first statx of an inode block wait for the disk one after another: the walk took ~1 s
 * instead of ~0.16 s. The warming threads keep several of those reads in flight, so the walk,
 * which still makes every call it made before and takes its results from them, finds the
 * directories and inodes read. Nothing is followed (lstat; a directory is entered only when
 * lstat says directory). At most WARM_DIRS directories, then the threads stop.
 */
#define WARM_DIRS 1000000
typedef struct WarmDir { struct WarmDir *next; size_t len; int root; char path[]; } WarmDir;
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  WarmDir *head;
  int threads, idle, done, refs;
  long dirs;
} Warm;

static void warmPush(Warm *w, const char *dir, size_t dlen, const char *name) {
  size_t nlen = strlen(name);
  if (dlen + 1 + nlen > PATH_MAX) return;
  WarmDir *d = malloc(sizeof *d + dlen + 1 + nlen + 1);
  if (!d) return;
  memcpy(d->path, dir, dlen);
  d->path[dlen] = '/';
  memcpy(d->path + dlen + 1, name, nlen + 1);
  d->len = dlen + 1 + nlen;
  d->root = 0;
  pthread_mutex_lock(&w->mu);
  if (w->dirs++ < WARM_DIRS && !w->done) {
    d->next = w->head;
    w->head = d;
    d = NULL;
    pthread_cond_signal(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  free(d);
}

static void warmOne(Warm *w, const WarmDir *d) {
  /* The root as the walk opens it (a link to a directory is walked); below it only what lstat
   * called a directory. */
  int fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (d->root ? 0 : O_NOFOLLOW));
  if (fd < 0) return;
  DIR *dir = fdopendir(fd);
  if (!dir) {
    close(fd);
    return;
  }
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    const char *n = de->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    struct stat st;
    if (fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) warmPush(w, d->path, d->len, n);
  }
  closedir(dir);
}

static void *warmThread(void *arg) {
  Warm *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->done) {
      if (++w->idle == w->threads) {
        w->done = 1;
        pthread_cond_broadcast(&w->cv);
        break;
      }
      pthread_cond_wait(&w->cv, &w->mu);
      w->idle--;
    }
    if (w->done && !w->head) break;
    WarmDir *d = w->head;
    w->head = d->next;
    pthread_mutex_unlock(&w->mu);
    warmOne(w, d);
    free(d);
    pthread_mutex_lock(&w->mu);
  }
  int last = --w->refs == 0;
  pthread_mutex_unlock(&w->mu);
  if (last) {
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
  }
  return NULL;
}

static napi_value WarmTree(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *pathp;
  size_t plen;
  uint32_t threads = 0;
  if (argc < 2 || !typed(env, argv[0], napi_uint8_array, &pathp, &plen) || !u32arg(env, argv[1], &threads) || threads == 0 || threads > 64 ||
      plen == 0 || plen > PATH_MAX || memchr(pathp, 0, plen)) {
    napi_throw_type_error(env, NULL, "miqchunk.warmTree: bad arguments");
    return NULL;
  }
  Warm *w = calloc(1, sizeof *w);
  WarmDir *root = malloc(sizeof *root + plen + 1);
  if (!w || !root) {
    free(w); free(root);
    return NULL;
  }
  memcpy(root->path, pathp, plen);
  root->path[plen] = 0;
  root->len = plen;
  root->root = 1;
  root->next = NULL;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->head = root;
  w->dirs = 1;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 << 10);
  /* The threads wait for the lock until every one is made: `threads` and `refs` are then the
   * number that started. */
  pthread_mutex_lock(&w->mu);
  for (uint32_t i = 0; i < threads; i++) {
    pthread_t t;
    if (pthread_create(&t, &attr, warmThread, w) == 0) w->refs++;
  }
  w->threads = w->refs;
  int none = w->refs == 0;
  pthread_mutex_unlock(&w->mu);
  pthread_attr_destroy(&attr);
  if (none) {
    free(root);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
  }
  return NULL;
}

#ifdef MIQ_HAVE_BLAKE3
/*
 * hashFiles(files: {path: Uint8Array, size: number}[]) -> Buffer: the ingest's hash pass
 * (store/ingest-worker.ts hashOne) for a whole task in one call: per file open (O_NOFOLLOW,
 * O_NONBLOCK), fstat, read, BLAKE3 (the official C implementation, from Debian's librust-blake3-dev),
 * and for a file read whole the reference scan (store/refscan.ts scanRefs, the same positions).
 * Per file, in order: one status byte; 0: the 32-byte id, a uint32 count and that many 32-byte
 * reference candidates (in the order found, repeats included: the caller dedupes and caps them
 * as scanRefs' Set does); 1: the id only (read in more than one buffer: no candidates, as
 * hashOne); 2: nothing — the caller hashes that file in JS, which gives any error its usual
 * message (cannot open, not a regular file, read error, changed size).
 */
#define HASH_BUF (4u << 20)
/*
 * Files opened, and their reads started, ahead of the one being hashed: at most AHEAD_FILES
 * files and AHEAD_BYTES bytes (and AHEAD_BYTES of any one file). The hash pass of an update
 * reads files whose pages this host has often already evicted (DAMON's pageout: the small
 * corpus's files were cold again 10-20 s after a read), one synchronous read after another; with
 * their reads queued together the device serves them in parallel.
 */
#define AHEAD_FILES 64
#define AHEAD_BYTES ((double)(32u << 20))
static uint8_t HEXV[256];

static int scanRefsC(Buf *out, const uint8_t *buf, size_t end, uint32_t *count) {
  size_t p = 0;
  while (p < end) {
    size_t k = p + 32;
    if (k >= end) return 1;
    if (!HEXV[buf[k]]) { p = k; continue; }
    size_t j = k - 1;
    while (j > p && HEXV[buf[j]]) j--;
    if (j > p) { p = j; continue; }
    if (buf[p] == '-') {
      if (!put(out, buf + p + 1, 32)) return 0;
      (*count)++;
    }
    p = k + 1;
  }
  return 1;
}

/* read() as readMore does: eof at 0 or at a short read that reaches the fstat size. -1: error. */
static ssize_t readSome(int fd, uint8_t *buf, size_t room, size_t total, size_t size, int *eof) {
  ssize_t n;
  do n = read(fd, buf, room); while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  *eof = n == 0 || ((size_t)n < room && total + (size_t)n == size);
  return n;
}

/* Opens a file of the task and asks the kernel to start reading it (POSIX_FADV_WILLNEED: the
 * reads are queued, the call does not wait for them). -1 when it cannot be opened. */
static int openAhead(const char *path, double size) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd >= 0 && size > 0) posix_fadvise(fd, 0, size < AHEAD_BYTES ? (off_t)size : (off_t)AHEAD_BYTES, POSIX_FADV_WILLNEED);
  return fd;
}

/* Hashes the file open at `fd` (closed here; -1: it could not be opened). */
static int hashOneC(Buf *out, uint8_t *buf, int fd, double want) {
  if (fd < 0) return 2;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); return 2; }
  size_t size = (size_t)st.st_size, total = 0;
  int eof = 0;
  ssize_t n = readSome(fd, buf, HASH_BUF, 0, size, &eof);
  if (n < 0) { close(fd); return 2; }
  total = (size_t)n;
  blake3_hasher h;
  blake3_hasher_init(&h);
  blake3_hasher_update(&h, buf, total);
  uint8_t id[32];
  if (eof) {
    close(fd);
    if ((double)total != want) return 2;
    blake3_hasher_finalize(&h, id, 32);
    uint8_t st0 = 0;
    uint32_t count = 0;
    size_t at = out->len;
    if (!put(out, &st0, 1) || !put(out, id, 32) || !put(out, &count, 4)) return -1;
    if (!scanRefsC(out, buf, total, &count)) return -1;
    for (int b = 0; b < 4; b++) out->p[at + 33 + b] = (char)(count >> (8 * b)); /* little-endian */
    return 0;
  }
  while (!eof) {
    n = readSome(fd, buf, HASH_BUF, total, size, &eof);
    if (n < 0) { close(fd); return 2; }
    blake3_hasher_update(&h, buf, (size_t)n);
    total += (size_t)n;
  }
  close(fd);
  if ((double)total != want) return 2;
  blake3_hasher_finalize(&h, id, 32);
  uint8_t st1 = 1;
  if (!put(out, &st1, 1) || !put(out, id, 32)) return -1;
  return 1;
}

/* One hashFiles call's files (paths copied out of JS, so the work can run off the JS thread)
 * and its packed answer. */
typedef struct {
  uint32_t n;
  size_t *at;
  double *want;
  int *fds;
  Buf paths;
  Buf out;
  int ok;
  napi_async_work work;
  napi_deferred deferred;
} HashJob;

static void hashJobFree(HashJob *j) {
  if (!j) return;
  free(j->at); free(j->want); free(j->fds); free(j->paths.p); free(j->out.p);
  free(j);
}

/* The job for `files` (hashFiles' argument), or NULL with a JS exception pending. */
static HashJob *hashJobOf(napi_env env, napi_value files, const char *what) {
  uint32_t n = 0;
  bool isArr = false;
  if (napi_is_array(env, files, &isArr) != napi_ok || !isArr || napi_get_array_length(env, files, &n) != napi_ok) {
    char msg[64];
    snprintf(msg, sizeof msg, "miqchunk.%s: bad arguments", what);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  napi_value kPath, kSize;
  napi_create_string_latin1(env, "path", NAPI_AUTO_LENGTH, &kPath);
  napi_create_string_latin1(env, "size", NAPI_AUTO_LENGTH, &kSize);
  HashJob *j = calloc(1, sizeof *j);
  if (j) {
    j->n = n;
    j->at = malloc(sizeof(size_t) * (n ? n : 1));
    j->want = malloc(sizeof(double) * (n ? n : 1));
    j->fds = malloc(sizeof(int) * (n ? n : 1));
  }
  if (!j || !j->at || !j->want || !j->fds) {
    hashJobFree(j);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  /* Every path (NUL-terminated, in one block; -1: unusable, hashed in JS). */
  int ok = 1;
  for (uint32_t i = 0; ok && i < n; i++) {
    napi_value f, pv, sv;
    void *pp = NULL;
    size_t plen = 0;
    j->want[i] = -1;
    if (napi_get_element(env, files, i, &f) != napi_ok || napi_get_property(env, f, kPath, &pv) != napi_ok ||
        napi_get_property(env, f, kSize, &sv) != napi_ok || !typed(env, pv, napi_uint8_array, &pp, &plen) ||
        napi_get_value_double(env, sv, &j->want[i]) != napi_ok) {
      hashJobFree(j);
      char msg[64];
      snprintf(msg, sizeof msg, "miqchunk.%s: bad file entry", what);
      napi_throw_type_error(env, NULL, msg);
      return NULL;
    }
    j->at[i] = (size_t)-1;
    if (plen <= PATH_MAX && !memchr(pp, 0, plen)) {
      uint8_t z = 0;
      j->at[i] = j->paths.len;
      ok = put(&j->paths, pp, plen) && put(&j->paths, &z, 1);
    }
  }
  if (!ok) {
    hashJobFree(j);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  return j;
}

/* The files in order, each opened up to AHEAD_FILES ahead (openAhead); no JS. j->ok 0: out of
 * memory part way. */
static void hashJobRun(HashJob *j) {
  uint8_t *buf = malloc(HASH_BUF);
  int ok = buf != NULL;
  uint32_t n = j->n, next = 0, opened = 0, i = 0;
  double ahead = 0;
  for (; ok && i < n; i++) {
    while (next < n && (next == i || (opened < AHEAD_FILES && ahead < AHEAD_BYTES))) {
      j->fds[next] = j->at[next] == (size_t)-1 ? -1 : openAhead(j->paths.p + j->at[next], j->want[next]);
      if (j->fds[next] >= 0) opened++;
      ahead += j->want[next] > 0 ? j->want[next] : 0;
      next++;
    }
    int r = 2;
    if (j->at[i] != (size_t)-1) r = hashOneC(&j->out, buf, j->fds[i], j->want[i]);
    if (j->fds[i] >= 0) opened--;
    ahead -= j->want[i] > 0 ? j->want[i] : 0;
    if (r == 2) {
      uint8_t two = 2;
      ok = put(&j->out, &two, 1);
    } else if (r < 0) {
      ok = 0;
    }
  }
  /* Out of memory part way: the files opened ahead and not hashed are closed (hashOneC closes
   * the ones it was given). */
  for (; i < next; i++) if (j->fds[i] >= 0) close(j->fds[i]);
  free(buf);
  j->ok = ok;
}

static napi_value HashFiles(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "miqchunk.hashFiles: bad arguments");
    return NULL;
  }
  HashJob *j = hashJobOf(env, argv[0], "hashFiles");
  if (!j) return NULL;
  hashJobRun(j);
  if (!j->ok) {
    hashJobFree(j);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  napi_value res;
  void *bp;
  napi_create_buffer_copy(env, j->out.len, j->out.len ? j->out.p : "", &bp, &res);
  hashJobFree(j);
  return res;
}

/*
 * hashFilesAsync(files) -> Promise<Buffer>: hashFiles with its work (every open, read and hash)
 * on libuv's thread pool, the answer the same bytes. The ingest's hash pass of an update calls
 * it from the main thread, so a task of known files needs no worker isolate: no task and result
 * cloned across threads, no worker JS per task, and a pool that only starts once something must
 * be scanned or compressed (store/ingest.ts).
 */
static void hashExecute(napi_env env, void *data) {
  hashJobRun(data);
}

static void hashComplete(napi_env env, napi_status status, void *data) {
  HashJob *j = data;
  napi_value v;
  if (status != napi_ok || !j->ok) {
    napi_value code, msg;
    napi_create_string_latin1(env, status == napi_cancelled ? "ECANCELED" : "ENOMEM", NAPI_AUTO_LENGTH, &code);
    napi_create_string_latin1(env, status == napi_cancelled ? "cancelled" : "out of memory", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &v);
    napi_reject_deferred(env, j->deferred, v);
  } else {
    void *bp;
    if (napi_create_buffer_copy(env, j->out.len, j->out.len ? j->out.p : "", &bp, &v) == napi_ok) napi_resolve_deferred(env, j->deferred, v);
    else {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
      napi_reject_deferred(env, j->deferred, e);
    }
  }
  napi_delete_async_work(env, j->work);
  hashJobFree(j);
}

static napi_value HashFilesAsync(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "miqchunk.hashFilesAsync: bad arguments");
    return NULL;
  }
  HashJob *j = hashJobOf(env, argv[0], "hashFilesAsync");
  if (!j) return NULL;
  napi_value promise, name;
  napi_create_string_latin1(env, "miqchunk.hashFiles", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, hashExecute, hashComplete, j, &j->work) != napi_ok) {
    hashJobFree(j);
    napi_throw_error(env, "EIO", "miqchunk.hashFilesAsync: cannot queue the work");
    return NULL;
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_async_work(env, j->work);
    hashJobFree(j);
    napi_throw_error(env, "EIO", "miqchunk.hashFilesAsync: cannot queue the work");
    return NULL;
  }
  return promise;
}
#endif /* MIQ_HAVE_BLAKE3 */

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "cut", NAPI_AUTO_LENGTH, Cut, NULL, &fn);
  napi_set_named_property(env, exports, "cut", fn);
  napi_create_function(env, "listDir", NAPI_AUTO_LENGTH, ListDir, NULL, &fn);
  napi_set_named_property(env, exports, "listDir", fn);
  napi_create_function(env, "warmTree", NAPI_AUTO_LENGTH, WarmTree, NULL, &fn);
  napi_set_named_property(env, exports, "warmTree", fn);
#ifdef MIQ_HAVE_BLAKE3
  for (const char *c = "0123456789abcdef"; *c; c++) HEXV[(uint8_t)*c] = 1;
  napi_create_function(env, "hashFiles", NAPI_AUTO_LENGTH, HashFiles, NULL, &fn);
  napi_set_named_property(env, exports, "hashFiles", fn);
  napi_create_function(env, "hashFilesAsync", NAPI_AUTO_LENGTH, HashFilesAsync, NULL, &fn);
  napi_set_named_property(env, exports, "hashFilesAsync", fn);
#endif
  return exports;
}
