/*
 * The chunker's gear loop (store/chunker.ts `Chunker.cut`) in C: the same cut points, byte for
 * byte, about three times faster than the JS loop (bounds checks on two typed arrays per byte).
 * store/chunker.ts uses it when this addon loaded and keeps the JS loop otherwise; a unit test
 * compares both on the same bytes. No state: safe in every worker thread.
 *
 * And one directory of the ingest walk (store/walk-sync.ts `listDir`): its names, each one's
 * lstat (statx, as libuv makes it) and link target, packed, in one call instead of a readdir and
 * an lstatSync per entry (a Stats object and four Dates each in Node 20); and the whole walk
 * made of those listings on a thread of its own (store/walk.ts `walkHere`: `walkTree`).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <dirent.h>
#include <dlfcn.h>
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

/* A wrong call from JS: throws a TypeError (RangeError with `range`) "miqchunk.WHAT: WHY". */
static void *badCall(napi_env env, int range, const char *what, const char *why) {
  char msg[128];
  snprintf(msg, sizeof msg, "miqchunk.%s: %s", what, why);
  if (range) napi_throw_range_error(env, NULL, msg);
  else napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static int u32arg(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

/* The length of the next chunk of b[start, end): Chunker.cut's loop (also the C scan's). */
static uint32_t cutAt(const uint8_t *b, size_t start, size_t end, uint32_t min, uint32_t avg, uint32_t max, uint32_t maskS, uint32_t maskL, const uint32_t *G) {
  uint32_t n = (uint32_t)(end - start);
  if (n <= min) return n;
  if (n > max) n = max;
  uint32_t normal = n < avg ? n : avg;
  uint32_t h = 0;
  size_t i = start + min;
  const size_t iNormal = start + normal, iEnd = start + n;
  for (; i < iNormal; i++) {
    h = (h << 1) + G[b[i]];
    if ((h & maskS) == 0) return (uint32_t)(i + 1 - start);
  }
  for (; i < iEnd; i++) {
    h = (h << 1) + G[b[i]];
    if ((h & maskL) == 0) return (uint32_t)(i + 1 - start);
  }
  return n;
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
      !u32arg(env, argv[5], &max) || !u32arg(env, argv[6], &maskS) || !u32arg(env, argv[7], &maskL))
    return badCall(env, 0, "cut", "bad arguments");
  if (start > end || end > blen) return badCall(env, 1, "cut", "start and end outside the buffer");
  uint32_t r = cutAt(bufp, start, end, min, avg, max, maskS, maskL, gearp);
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
/* One directory listed (listOne): the names in byte order, and the first `done` entries' numbers
 * and link targets. */
typedef struct {
  Buf names, ends, num, targets, tends;
  uint32_t count, done;
  const char *err; /* an entry's lstat or readlink failed: errno's name (entry `done`) */
  int errLink;     /* ... and it was the readlink */
} Listing;

static void listingFree(Listing *l) {
  free(l->names.p); free(l->ends.p); free(l->num.p); free(l->targets.p); free(l->tends.p);
  memset(l, 0, sizeof *l);
}

/* Lists `path` into `l` (see ListDir). Slow calls (`slowNs` or more each): after `maxSlow` of
 * them (0: never) it stops, or, with `onSlow`, calls that once and goes on. Returns 0, or the
 * errno that kept the directory from being read (ENOMEM for memory); `l` is then empty. */
static int listOne(const char *path, Listing *l, double slowNs, uint32_t maxSlow, void (*onSlow)(void *), void *ctx) {
  memset(l, 0, sizeof *l);
  DIR *d = opendir(path);
  if (!d) return errno;
  int ok = 1;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      if (errno) {
        int e = errno;
        closedir(d);
        listingFree(l);
        return e;
      }
      break;
    }
    const char *n = de->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    uint32_t end;
    ok = ok && put(&l->names, n, strlen(n));
    end = (uint32_t)l->names.len;
    ok = ok && put(&l->ends, &end, sizeof end);
    l->count++;
  }
  /* Names in byte order, as libuv's scandir sorts them for readdirSync (strcmp), rather than
   * readdir's hash order: small files share compressed frames in the order the walk hands them
   * out, and neighbours by name compress better together (store/walk-sync.ts NAME_ORDER). */
  if (ok && l->count > 1) ok = sortNames(&l->names, &l->ends, l->count);
  int fd = dirfd(d);
  uint32_t slow = 0;
  char name[NAME_MAX + 1];
  char target[PATH_MAX];
  const uint32_t *endv = (const uint32_t *)l->ends.p;
  for (uint32_t i = 0; ok && i < l->count; i++) {
    uint32_t start = i ? endv[i - 1] : 0;
    memcpy(name, l->names.p + start, endv[i] - start);
    name[endv[i] - start] = 0;
    int64_t t0 = maxSlow > 0 ? nowNs() : 0;
    struct statx sx;
    if (statx(fd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS, &sx) != 0) {
      l->err = errName(errno);
      break;
    }
    if ((sx.stx_mode & S_IFMT) == S_IFLNK) {
      ssize_t tl = readlinkat(fd, name, target, sizeof target);
      if (tl < 0) {
        l->err = errName(errno);
        l->errLink = 1;
        break;
      }
      uint32_t te;
      ok = ok && put(&l->targets, target, (size_t)tl);
      te = (uint32_t)l->targets.len;
      ok = ok && put(&l->tends, &te, sizeof te);
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
    ok = ok && put(&l->num, v, sizeof v);
    l->done = i + 1;
    if (maxSlow > 0 && (double)(nowNs() - t0) >= slowNs && ++slow >= maxSlow) {
      if (!onSlow) break;
      onSlow(ctx);
      maxSlow = 0;
    }
  }
  closedir(d);
  if (!ok) {
    listingFree(l);
    return ENOMEM;
  }
  return 0;
}

static napi_value ListDir(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *pathp;
  size_t plen;
  double slowNs = 0;
  uint32_t maxSlow = 0;
  if (argc < 3 || !typed(env, argv[0], napi_uint8_array, &pathp, &plen) || memchr(pathp, 0, plen) || napi_get_value_double(env, argv[1], &slowNs) != napi_ok ||
      !u32arg(env, argv[2], &maxSlow))
    return badCall(env, 0, "listDir", "bad arguments");
  char *path = malloc(plen + 1);
  if (!path) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  memcpy(path, pathp, plen);
  path[plen] = 0;
  Listing l;
  int e = listOne(path, &l, slowNs, maxSlow, NULL, NULL);
  free(path);
  if (e) {
    napi_throw_error(env, errName(e), strerror(e));
    return NULL;
  }
  napi_value out, v;
  napi_create_array_with_length(env, 7, &out);
  void *bp;
  napi_create_buffer_copy(env, l.names.len, l.names.len ? l.names.p : "", &bp, &v);
  napi_set_element(env, out, 0, v);
  napi_set_element(env, out, 1, typedCopy(env, napi_uint32_array, 4, &l.ends));
  napi_create_uint32(env, l.done, &v);
  napi_set_element(env, out, 2, v);
  napi_set_element(env, out, 3, typedCopy(env, napi_float64_array, 8, &l.num));
  napi_create_buffer_copy(env, l.targets.len, l.targets.len ? l.targets.p : "", &bp, &v);
  napi_set_element(env, out, 4, v);
  napi_set_element(env, out, 5, typedCopy(env, napi_uint32_array, 4, &l.tends));
  if (l.err) napi_create_string_utf8(env, l.err, NAPI_AUTO_LENGTH, &v);
  else napi_get_null(env, &v);
  napi_set_element(env, out, 6, v);
  listingFree(&l);
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

/* Starts the warming threads on `root` (plen bytes, no NUL); whether any started. */
static int warmStart(const char *rootp, size_t plen, uint32_t threads) {
  Warm *w = calloc(1, sizeof *w);
  WarmDir *root = malloc(sizeof *root + plen + 1);
  if (!w || !root) {
    free(w); free(root);
    return 0;
  }
  memcpy(root->path, rootp, plen);
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
  return !none;
}

static napi_value WarmTree(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *pathp;
  size_t plen;
  uint32_t threads = 0;
  if (argc < 2 || !typed(env, argv[0], napi_uint8_array, &pathp, &plen) || !u32arg(env, argv[1], &threads) || threads == 0 || threads > 64 ||
      plen == 0 || plen > PATH_MAX || memchr(pathp, 0, plen))
    return badCall(env, 0, "warmTree", "bad arguments");
  warmStart(pathp, plen, threads);
  return NULL;
}

/*
 * walkTree(root: Uint8Array, slowNs: number, onBatch: (batch) => boolean): the synchronous walk
 * of store/walk-sync.ts `traverse` with listOne (listDir's listing), on a thread of its own
 * (detached), handing its entries to the main thread in batches of WALK_BATCH (a threadsafe
 * function; at most WALK_QUEUE batches waiting, then the thread waits). The main thread then only
 * turns entries into the walk's nodes: in small N+1 the listing was ~70 ms of the ~130 ms the walk
 * held the main thread, and the index lookups and task results waited behind it.
 * The same entries, order and numbers as traverse: a stack of directories (the root, numbered 0),
 * the top one listed, its entries handed out in name order, each directory among them pushed and
 * numbered in that order. A batch: { count, paths (full paths one after another), ends, parent,
 * kind (0 file, 1 dir, 2 link, 3 other), num (six numbers each, as listDir's), targets,
 * targetEnds (the links' targets, in order), end, error }; `end` on the last one; `error`
 * ({ code, message, path, what: 'dir' | 'stat' | 'link' }) when a directory could not be read or
 * an entry's lstat or readlink failed: the entries before it are in that batch, and it is the
 * last. `onBatch` returning true stops the walk (the thread ends at its next batch). The first
 * WALK_SLOW_CALLS lstat calls in one directory that take `slowNs` or more each start warmTree's
 * threads on the whole tree (once), as traverse does on a cold tree.
 */
#define WALK_BATCH 512
#define WALK_QUEUE 16
#define WALK_SLOW_CALLS 3
#define WALK_WARM_THREADS 8

typedef struct {
  Buf paths, ends, parent, kind, num, targets, tends;
  uint32_t count;
  int end, what;
  const char *code, *message;
  char *errPath;
} WBatch;

typedef struct { char *path; size_t len; uint32_t index; } WDir;

typedef struct {
  napi_threadsafe_function tsfn;
  char *root;
  size_t rootLen;
  double slowNs;
  int stop, refs, warmTried;
  WDir *stack;
  size_t depth, cap;
  uint32_t dirs;
  WBatch *cur;
} Walker;

static void wbatchFree(WBatch *b) {
  if (!b) return;
  free(b->paths.p); free(b->ends.p); free(b->parent.p); free(b->kind.p); free(b->num.p); free(b->targets.p); free(b->tends.p);
  free(b->errPath);
  free(b);
}

static void walkerUnref(Walker *w) {
  if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  for (size_t i = 0; i < w->depth; i++) free(w->stack[i].path);
  free(w->stack);
  free(w->root);
  free(w);
}

static int walkStopped(Walker *w) { return __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE); }

/* Hands the current batch to the main thread (a NULL one says: out of memory) and starts one. */
static void walkSend(Walker *w) {
  WBatch *b = w->cur;
  w->cur = NULL;
  if (napi_call_threadsafe_function(w->tsfn, b, napi_tsfn_blocking) != napi_ok) {
    wbatchFree(b);
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
  }
  if (b && !b->end && !walkStopped(w)) w->cur = calloc(1, sizeof *w->cur);
}

/* Ends the walk with an error on `path` (dir + "/" + name, or dir alone). */
static void walkFail(Walker *w, int what, const char *code, const char *message, const char *dir, size_t dlen, const char *name, size_t nlen) {
  WBatch *b = w->cur;
  if (b) {
    b->errPath = malloc(dlen + 1 + nlen + 1);
    if (b->errPath) {
      memcpy(b->errPath, dir, dlen);
      b->errPath[dlen] = 0;
      if (name) {
        b->errPath[dlen] = '/';
        memcpy(b->errPath + dlen + 1, name, nlen);
        b->errPath[dlen + 1 + nlen] = 0;
      }
      b->code = code;
      b->message = message;
      b->what = what;
      b->end = 1;
    } else {
      wbatchFree(b);
      w->cur = NULL;
    }
  }
  walkSend(w);
  __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
}

static void walkWarm(void *ctx) {
  Walker *w = ctx;
  if (!w->warmTried) warmStart(w->root, w->rootLen, WALK_WARM_THREADS);
  w->warmTried = 1;
}

static int walkPush(Walker *w, const char *path, size_t len, uint32_t index) {
  if (w->depth == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 64;
    WDir *s = realloc(w->stack, cap * sizeof *s);
    if (!s) return 0;
    w->stack = s;
    w->cap = cap;
  }
  char *p = malloc(len + 1);
  if (!p) return 0;
  memcpy(p, path, len);
  p[len] = 0;
  w->stack[w->depth++] = (WDir){ p, len, index };
  return 1;
}

/* Lists one directory into batches; its directories go on the stack. */
static void walkOne(Walker *w, const WDir *d) {
  Listing l;
  int e = listOne(d->path, &l, w->slowNs, w->warmTried ? 0 : WALK_SLOW_CALLS, walkWarm, w);
  if (e) return walkFail(w, 0, errName(e), strerror(e), d->path, d->len, NULL, 0);
  const uint32_t *endv = (const uint32_t *)l.ends.p, *tendv = (const uint32_t *)l.tends.p;
  const double *num = (const double *)l.num.p;
  uint32_t link = 0;
  int ok = 1;
  for (uint32_t i = 0; ok && i < l.done; i++) {
    WBatch *b = w->cur;
    uint32_t start = i ? endv[i - 1] : 0, mode = (uint32_t)num[i * 6 + 1] & S_IFMT;
    uint8_t kind = mode == S_IFREG ? 0 : mode == S_IFDIR ? 1 : mode == S_IFLNK ? 2 : 3;
    ok = b && put(&b->paths, d->path, d->len) && put(&b->paths, "/", 1) && put(&b->paths, l.names.p + start, endv[i] - start);
    uint32_t end = ok ? (uint32_t)b->paths.len : 0;
    ok = ok && put(&b->ends, &end, 4) && put(&b->parent, &d->index, 4) && put(&b->kind, &kind, 1) && put(&b->num, num + i * 6, 48);
    if (ok && kind == 2) {
      uint32_t ts = link ? tendv[link - 1] : 0, te;
      ok = put(&b->targets, l.targets.p + ts, tendv[link] - ts);
      te = (uint32_t)b->targets.len;
      ok = ok && put(&b->tends, &te, 4);
      link++;
    }
    if (ok && kind == 1) ok = walkPush(w, b->paths.p + (end - d->len - 1 - (endv[i] - start)), d->len + 1 + (endv[i] - start), ++w->dirs);
    if (ok && ++b->count >= WALK_BATCH) {
      walkSend(w);
      if (walkStopped(w)) break;
    }
  }
  if (!ok) walkFail(w, 0, "ENOMEM", "out of memory", d->path, d->len, NULL, 0);
  else if (l.err && !walkStopped(w)) {
    uint32_t start = l.done ? endv[l.done - 1] : 0;
    walkFail(w, l.errLink ? 2 : 1, l.err, l.err, d->path, d->len, l.names.p + start, endv[l.done] - start);
  }
  listingFree(&l);
}

static void *walkThread(void *arg) {
  Walker *w = arg;
  w->cur = calloc(1, sizeof *w->cur);
  while (w->depth > 0 && !walkStopped(w)) {
    WDir d = w->stack[--w->depth];
    walkOne(w, &d);
    free(d.path);
  }
  if (!walkStopped(w)) {
    if (w->cur) w->cur->end = 1;
    walkSend(w);
  }
  wbatchFree(w->cur);
  w->cur = NULL;
  napi_release_threadsafe_function(w->tsfn, napi_tsfn_release);
  walkerUnref(w);
  return NULL;
}

static napi_value walkBytes(napi_env env, const Buf *b) {
  void *bp;
  napi_value v;
  napi_create_buffer_copy(env, b->len, b->len ? b->p : "", &bp, &v);
  return v;
}

static void walkProp(napi_env env, napi_value o, const char *k, napi_value v) { napi_set_named_property(env, o, k, v); }

/* On the main thread: one batch to JS (a NULL batch: out of memory). */
static void walkCall(napi_env env, napi_value cb, void *context, void *data) {
  Walker *w = context;
  WBatch *b = data;
  if (!env) return wbatchFree(b);
  static const WBatch none = { .end = 1, .what = 0, .code = "ENOMEM", .message = "out of memory" };
  const WBatch *x = b ? b : &none;
  napi_value o, v, u;
  napi_create_object(env, &o);
  napi_create_uint32(env, x->count, &v);
  walkProp(env, o, "count", v);
  walkProp(env, o, "paths", walkBytes(env, &x->paths));
  walkProp(env, o, "ends", typedCopy(env, napi_uint32_array, 4, &x->ends));
  walkProp(env, o, "parent", typedCopy(env, napi_uint32_array, 4, &x->parent));
  walkProp(env, o, "kind", typedCopy(env, napi_uint8_array, 1, &x->kind));
  walkProp(env, o, "num", typedCopy(env, napi_float64_array, 8, &x->num));
  walkProp(env, o, "targets", walkBytes(env, &x->targets));
  walkProp(env, o, "targetEnds", typedCopy(env, napi_uint32_array, 4, &x->tends));
  napi_get_boolean(env, x->end, &v);
  walkProp(env, o, "end", v);
  if (x->code) {
    napi_value e;
    napi_create_object(env, &e);
    napi_create_string_utf8(env, x->code, NAPI_AUTO_LENGTH, &v);
    walkProp(env, e, "code", v);
    napi_create_string_utf8(env, x->message, NAPI_AUTO_LENGTH, &v);
    walkProp(env, e, "message", v);
    Buf p = { x->errPath, x->errPath ? strlen(x->errPath) : 0, 0 };
    walkProp(env, e, "path", walkBytes(env, &p));
    napi_create_string_utf8(env, x->what == 0 ? "dir" : x->what == 1 ? "stat" : "link", NAPI_AUTO_LENGTH, &v);
    walkProp(env, e, "what", v);
    walkProp(env, o, "error", e);
  }
  wbatchFree(b);
  napi_get_undefined(env, &u);
  bool stop = false;
  if (napi_call_function(env, u, cb, 1, &o, &v) == napi_ok) napi_get_value_bool(env, v, &stop);
  if (stop) __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
}

static void walkFinalize(napi_env env, void *data, void *hint) { walkerUnref(data); }

static napi_value WalkTree(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], name;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *pathp;
  size_t plen;
  double slowNs = 0;
  napi_valuetype t = napi_undefined;
  if (argc < 3 || !typed(env, argv[0], napi_uint8_array, &pathp, &plen) || plen == 0 || plen > PATH_MAX || memchr(pathp, 0, plen) ||
      napi_get_value_double(env, argv[1], &slowNs) != napi_ok || napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function)
    return badCall(env, 0, "walkTree", "bad arguments");
  Walker *w = calloc(1, sizeof *w);
  char *root = malloc(plen + 1);
  if (!w || !root) {
    free(w); free(root);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  memcpy(root, pathp, plen);
  root[plen] = 0;
  *w = (Walker){ .root = root, .rootLen = plen, .slowNs = slowNs, .refs = 2 };
  if (!walkPush(w, root, plen, 0)) {
    free(root); free(w);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  napi_create_string_utf8(env, "miqchunk.walkTree", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, WALK_QUEUE, 1, w, walkFinalize, w, walkCall, &w->tsfn) != napi_ok) {
    w->refs = 1;
    walkerUnref(w);
    napi_throw_error(env, "EIO", "cannot make the walk's threadsafe function");
    return NULL;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 << 10);
  pthread_t th;
  int e = pthread_create(&th, &attr, walkThread, w);
  pthread_attr_destroy(&attr);
  if (e) {
    /* The finalizer drops one reference, this the thread's. */
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
    walkerUnref(w);
    napi_throw_error(env, errName(e), strerror(e));
    return NULL;
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

/* scanRefs of store/refscan.ts: every '-' followed by 32 hex characters at positions [start,
 * end) of `buf`, the hex run allowed to reach up to `limit`, appended to `out` (32 bytes each). */
static int scanRefsC(Buf *out, const uint8_t *buf, size_t start, size_t end, size_t limit, uint32_t *count) {
  size_t p = start;
  while (p < end) {
    size_t k = p + 32;
    if (k >= limit) return 1;
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
    if (!scanRefsC(out, buf, 0, total, total, &count)) return -1;
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

/*
 * What the async jobs below (hash, scan, compress) share: the work and its promise, and the
 * answer, made on libuv's thread by the job's execute and settled by jobComplete on the JS
 * thread. status 0: resolve with `out`'s bytes; 1: resolve with null (given back: the caller
 * runs the task in a worker, which makes its error); -1: reject with ENOMEM.
 */
typedef struct Job {
  napi_async_work work;
  napi_deferred deferred;
  int status;
  Buf out;
  void (*free)(struct Job *);
} Job;

static void jobReject(napi_env env, napi_deferred d, const char *code, const char *msg) {
  napi_value c, m, e;
  napi_create_string_latin1(env, code, NAPI_AUTO_LENGTH, &c);
  napi_create_string_latin1(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, c, m, &e);
  napi_reject_deferred(env, d, e);
}

static void jobComplete(napi_env env, napi_status status, void *data) {
  Job *j = data;
  napi_value v;
  void *bp;
  if (status == napi_cancelled) {
    jobReject(env, j->deferred, "ECANCELED", "cancelled");
  } else if (status != napi_ok || j->status < 0) {
    jobReject(env, j->deferred, "ENOMEM", "out of memory");
  } else if (j->status == 1) {
    napi_get_null(env, &v);
    napi_resolve_deferred(env, j->deferred, v);
  } else if (napi_create_buffer_copy(env, j->out.len, j->out.len ? j->out.p : "", &bp, &v) == napi_ok) {
    napi_resolve_deferred(env, j->deferred, v);
  } else {
    napi_get_and_clear_last_exception(env, &v);
    napi_reject_deferred(env, j->deferred, v);
  }
  napi_delete_async_work(env, j->work);
  j->free(j);
}

/* Queues `j` on libuv's pool (`execute` there, then jobComplete): its promise, or NULL with `j`
 * freed and an error thrown. */
static napi_value jobQueue(napi_env env, Job *j, const char *name, napi_async_execute_callback execute) {
  napi_value promise, n;
  napi_create_string_latin1(env, name, NAPI_AUTO_LENGTH, &n);
  if (napi_create_async_work(env, NULL, n, execute, jobComplete, j, &j->work) != napi_ok) {
    j->free(j);
    napi_throw_error(env, "EIO", "miqchunk: cannot queue the work");
    return NULL;
  }
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    napi_delete_async_work(env, j->work);
    j->free(j);
    napi_throw_error(env, "EIO", "miqchunk: cannot queue the work");
    return NULL;
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    jobReject(env, j->deferred, "EIO", "miqchunk: cannot queue the work");
    napi_delete_async_work(env, j->work);
    j->free(j);
  }
  return promise;
}

/* One hashFiles call's files (paths copied out of JS, so the work can run off the JS thread);
 * its packed answer is the job's `out`. */
typedef struct {
  Job job;
  uint32_t n;
  size_t *at;
  double *want;
  int *fds;
  Buf paths;
} HashJob;

static void hashJobFree(Job *jb) {
  HashJob *j = (HashJob *)jb;
  if (!j) return;
  free(j->at); free(j->want); free(j->fds); free(j->paths.p); free(j->job.out.p);
  free(j);
}

/* The job for `files` (hashFiles' argument), or NULL with a JS exception pending. */
static HashJob *hashJobOf(napi_env env, napi_value files, const char *what, size_t size) {
  uint32_t n = 0;
  bool isArr = false;
  if (napi_is_array(env, files, &isArr) != napi_ok || !isArr || napi_get_array_length(env, files, &n) != napi_ok) return badCall(env, 0, what, "bad arguments");
  napi_value kPath, kSize;
  napi_create_string_latin1(env, "path", NAPI_AUTO_LENGTH, &kPath);
  napi_create_string_latin1(env, "size", NAPI_AUTO_LENGTH, &kSize);
  HashJob *j = calloc(1, size);
  if (j) {
    j->job.free = hashJobFree;
    j->n = n;
    j->at = malloc(sizeof(size_t) * (n ? n : 1));
    j->want = malloc(sizeof(double) * (n ? n : 1));
    j->fds = malloc(sizeof(int) * (n ? n : 1));
  }
  if (!j || !j->at || !j->want || !j->fds) {
    hashJobFree((Job *)j);
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
      hashJobFree(&j->job);
      return badCall(env, 0, what, "bad file entry");
    }
    j->at[i] = (size_t)-1;
    if (plen <= PATH_MAX && !memchr(pp, 0, plen)) {
      uint8_t z = 0;
      j->at[i] = j->paths.len;
      ok = put(&j->paths, pp, plen) && put(&j->paths, &z, 1);
    }
  }
  if (!ok) {
    hashJobFree(&j->job);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  return j;
}

/* The files in order, each opened up to AHEAD_FILES ahead (openAhead); no JS. Status -1: out
 * of memory part way. */
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
    if (j->at[i] != (size_t)-1) r = hashOneC(&j->job.out, buf, j->fds[i], j->want[i]);
    if (j->fds[i] >= 0) opened--;
    ahead -= j->want[i] > 0 ? j->want[i] : 0;
    if (r == 2) {
      uint8_t two = 2;
      ok = put(&j->job.out, &two, 1);
    } else if (r < 0) {
      ok = 0;
    }
  }
  /* Out of memory part way: the files opened ahead and not hashed are closed (hashOneC closes
   * the ones it was given). */
  for (; i < next; i++) if (j->fds[i] >= 0) close(j->fds[i]);
  free(buf);
  j->job.status = ok ? 0 : -1;
}

static napi_value HashFiles(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return badCall(env, 0, "hashFiles", "bad arguments");
  HashJob *j = hashJobOf(env, argv[0], "hashFiles", sizeof(HashJob));
  if (!j) return NULL;
  hashJobRun(j);
  napi_value res = NULL;
  void *bp;
  if (j->job.status < 0) napi_throw_error(env, "ENOMEM", "out of memory");
  else napi_create_buffer_copy(env, j->job.out.len, j->job.out.len ? j->job.out.p : "", &bp, &res);
  hashJobFree(&j->job);
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

static napi_value HashFilesAsync(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return badCall(env, 0, "hashFilesAsync", "bad arguments");
  HashJob *j = hashJobOf(env, argv[0], "hashFilesAsync", sizeof(HashJob));
  return j ? jobQueue(env, &j->job, "miqchunk.hashFiles", hashExecute) : NULL;
}

/*
 * Reused memory of the scan and compress jobs below (read buffers, zstd contexts with their
 * caches): kept between jobs, as an ingest worker keeps its own between tasks, because fresh
 * pages cost a fault each (~10 us on this project's VMs). ingestRelease() frees what is idle.
 */
#define SPARE_BUFS 4
static pthread_mutex_t spareMu = PTHREAD_MUTEX_INITIALIZER;
static struct { uint8_t *p; size_t cap; } spareBuf[SPARE_BUFS];

static uint8_t *bufTake(size_t want, size_t *cap) {
  pthread_mutex_lock(&spareMu);
  for (int i = 0; i < SPARE_BUFS; i++) {
    if (spareBuf[i].p && spareBuf[i].cap >= want) {
      uint8_t *p = spareBuf[i].p;
      *cap = spareBuf[i].cap;
      spareBuf[i].p = NULL;
      pthread_mutex_unlock(&spareMu);
      return p;
    }
  }
  pthread_mutex_unlock(&spareMu);
  *cap = want;
  return malloc(want);
}

static void bufGive(uint8_t *p, size_t cap) {
  if (!p) return;
  pthread_mutex_lock(&spareMu);
  for (int i = 0; i < SPARE_BUFS; i++) {
    if (!spareBuf[i].p) {
      spareBuf[i].p = p;
      spareBuf[i].cap = cap;
      p = NULL;
      break;
    }
  }
  pthread_mutex_unlock(&spareMu);
  free(p);
}

/* A buffer of at least `n` bytes (contents kept). */
static int room(Buf *b, size_t n) {
  if (b->cap >= n) return 1;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < n) cap *= 2;
  char *q = realloc(b->p, cap);
  if (!q) return 0;
  b->p = q;
  b->cap = cap;
  return 1;
}

static void blake3Of(const uint8_t *p, size_t n, uint8_t out[32]) {
  blake3_hasher h;
  blake3_hasher_init(&h);
  blake3_hasher_update(&h, p, n);
  blake3_hasher_finalize(&h, out, 32);
}

/*
 * scanFilesAsync(files: {path, size}[], params: Float64Array [min, avg, max, maskS, maskL,
 * keepSmall], gear: Int32Array) -> Promise<Buffer>: the ingest worker's scan task
 * (store/ingest-worker.ts scanOne, without a new store's compressing while it scans) on libuv's
 * thread pool: per file open (O_NOFOLLOW, O_NONBLOCK), fstat, reads into a buffer of max(4 MiB,
 * 2 max) filled as scanOne fills its own, the content-defined cuts (cutAt), each chunk's BLAKE3,
 * the file's, and the reference candidates of each chunk as scanOne finds them (the hex run
 * may reach past the chunk up to the bytes read). Per file, in order, one status byte; 0: the
 * file's id (32 bytes), a uint32 chunk count and per chunk its id (32) and length (uint32), a
 * uint32 count of reference candidates and those (32 bytes each, in the order found, repeats
 * included), an int32 length (-1: none) and the file's bytes when it is one chunk of at most
 * keepSmall bytes; 2: nothing — the caller scans that file in a worker, which gives any error
 * its usual message (cannot open, not a regular file, read error, changed size).
 */
typedef struct {
  HashJob h;
  uint32_t min, avg, max, maskS, maskL, keepSmall;
  uint32_t gear[256];
} ScanJob;

static int scanOneC(ScanJob *j, Buf *out, Buf *chunks, Buf *refs, uint8_t *buf, size_t L, int fd, double want) {
  if (fd < 0) return 2;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); return 2; }
  size_t size = (size_t)st.st_size, have = 0, total = 0;
  int eof = 0, hashing = 0, whole = 0;
  uint32_t nchunks = 0, nrefs = 0;
  blake3_hasher h;
  uint8_t fileId[32], id[32];
  const uint8_t *small = NULL;
  size_t smallLen = 0;
  chunks->len = 0;
  refs->len = 0;
  while (!eof || have > 0) {
    while (!eof && have < L) {
      ssize_t n = readSome(fd, buf + have, L - have, total, size, &eof);
      if (n < 0) { close(fd); return 2; }
      have += (size_t)n;
      total += (size_t)n;
    }
    size_t s = 0;
    while (have - s > 0 && (eof || have - s >= j->max)) {
      size_t len = cutAt(buf, s, have, j->min, j->avg, j->max, j->maskS, j->maskL, j->gear);
      const uint8_t *piece = buf + s;
      blake3Of(piece, len, id);
      if (eof && s == 0 && len == have && nchunks == 0) {
        memcpy(fileId, id, 32);
        whole = 1;
      } else {
        if (!hashing) blake3_hasher_init(&h);
        hashing = 1;
        blake3_hasher_update(&h, piece, len);
      }
      uint32_t l32 = (uint32_t)len;
      if (!scanRefsC(refs, buf, s, s + len, have, &nrefs) || !put(chunks, id, 32) || !put(chunks, &l32, 4)) { close(fd); return -1; }
      nchunks++;
      if (total <= j->keepSmall && eof) { small = piece; smallLen = len; }
      s += len;
    }
    if (s > 0) {
      memmove(buf, buf + s, have - s);
      have -= s;
    }
    if (eof && have == 0) break;
  }
  close(fd);
  if ((double)total != want) return 2;
  if (whole) {
  } else if (hashing) {
    blake3_hasher_finalize(&h, fileId, 32);
  } else {
    blake3Of(buf, 0, fileId);
  }
  uint8_t st0 = 0;
  int32_t dlen = small && nchunks == 1 ? (int32_t)smallLen : -1;
  if (!put(out, &st0, 1) || !put(out, fileId, 32) || !put(out, &nchunks, 4) || !put(out, chunks->p ? chunks->p : "", chunks->len) ||
      !put(out, &nrefs, 4) || !put(out, refs->p ? refs->p : "", refs->len) || !put(out, &dlen, 4) || (dlen > 0 && !put(out, small, (size_t)dlen))) return -1;
  return 0;
}

static void scanExecute(napi_env env, void *data) {
  ScanJob *sj = data;
  HashJob *j = &sj->h;
  Buf *out = &j->job.out;
  size_t L = (size_t)sj->max * 2 > (4u << 20) ? (size_t)sj->max * 2 : (4u << 20), cap = 0;
  uint8_t *buf = bufTake(L, &cap);
  Buf chunks = {0}, refs = {0};
  int ok = buf != NULL;
  for (uint32_t i = 0; ok && i < j->n; i++) {
    int fd = j->at[i] == (size_t)-1 ? -1 : open(j->paths.p + j->at[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int r = scanOneC(sj, out, &chunks, &refs, buf, L, fd, j->want[i]);
    if (r == 2) {
      uint8_t two = 2;
      ok = put(out, &two, 1);
    } else if (r < 0) {
      ok = 0;
    }
  }
  free(chunks.p);
  free(refs.p);
  bufGive(buf, cap);
  j->job.status = ok ? 0 : -1;
}

static napi_value ScanFilesAsync(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *pp = NULL, *gp = NULL;
  size_t plen = 0, glen = 0;
  if (argc < 3 || !typed(env, argv[1], napi_float64_array, &pp, &plen) || plen != 6 || !typed(env, argv[2], napi_int32_array, &gp, &glen) || glen != 256) {
    return badCall(env, 0, "scanFilesAsync", "bad arguments");
  }
  const double *p = pp;
  if (!(p[0] >= 64 && p[0] < p[1] && p[1] < p[2] && p[2] <= (double)(1u << 26) && p[3] >= 0 && p[3] <= 4294967295.0 && p[4] >= 0 && p[4] <= 4294967295.0 && p[5] >= 0 && p[5] <= p[0]))
    return badCall(env, 1, "scanFilesAsync", "bad chunk parameters");
  ScanJob *j = (ScanJob *)hashJobOf(env, argv[0], "scanFilesAsync", sizeof(ScanJob));
  if (!j) return NULL;
  j->min = (uint32_t)p[0]; j->avg = (uint32_t)p[1]; j->max = (uint32_t)p[2];
  j->maskS = (uint32_t)p[3]; j->maskL = (uint32_t)p[4]; j->keepSmall = (uint32_t)p[5];
  memcpy(j->gear, gp, sizeof j->gear);
  return jobQueue(env, &j->h.job, "miqchunk.scanFiles", scanExecute);
}

/*
 * zstd for the compress jobs: the system's libzstd.so.1, loaded at run time as native/miqfuse.c
 * loads it (no headers needed to build). The parameter numbers are zstd's stable API.
 */
#define ZSTD_C_LEVEL 100
#define ZSTD_C_CONTENT_SIZE 200
#define ZSTD_C_CHECKSUM 201
static struct {
  void *(*createCCtx)(void);
  size_t (*freeCCtx)(void *);
  size_t (*setParameter)(void *, int, int);
  size_t (*compress2)(void *, void *, size_t, const void *, size_t);
  size_t (*compressUsingDict)(void *, void *, size_t, const void *, size_t, const void *, size_t, int);
  size_t (*bound)(size_t);
  unsigned (*isError)(size_t);
  void *(*createDCtx)(void);
  size_t (*freeDCtx)(void *);
  size_t (*decompressDCtx)(void *, void *, size_t, const void *, size_t);
  size_t (*decompressUsingDict)(void *, void *, size_t, const void *, size_t, const void *, size_t);
} Z;
static int zOk;
static pthread_once_t zOnce = PTHREAD_ONCE_INIT;

static void zLoad(void) {
  void *h = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return;
#define ZSYM(f, n) if (!(*(void **)&Z.f = dlsym(h, n))) return;
  ZSYM(createCCtx, "ZSTD_createCCtx") ZSYM(freeCCtx, "ZSTD_freeCCtx") ZSYM(setParameter, "ZSTD_CCtx_setParameter")
  ZSYM(compress2, "ZSTD_compress2") ZSYM(compressUsingDict, "ZSTD_compress_usingDict") ZSYM(bound, "ZSTD_compressBound")
  ZSYM(isError, "ZSTD_isError") ZSYM(createDCtx, "ZSTD_createDCtx") ZSYM(freeDCtx, "ZSTD_freeDCtx")
  ZSYM(decompressDCtx, "ZSTD_decompressDCtx") ZSYM(decompressUsingDict, "ZSTD_decompress_usingDict")
#undef ZSYM
  zOk = 1;
}

/* zstdReady() -> whether compressItemsAsync can run (libzstd.so.1 loaded). */
static napi_value ZstdReady(napi_env env, napi_callback_info info) {
  pthread_once(&zOnce, zLoad);
  napi_value v;
  napi_get_boolean(env, zOk, &v);
  return v;
}

/* A compress job's zstd contexts and caches, one job at a time (a free list, like a worker's
 * module state): decoded delta bases by id (BASE_CACHE_BYTES, least recently used out first)
 * and decoded shared frames by where they lie (FRAME_CACHE_MAX), as ingest-worker.ts keeps them. */
#define BASE_CACHE_BYTES (4u << 20)
#define BASE_CACHE_MAX 128
#define FRAME_CACHE_MAX 16
typedef struct { uint8_t id[32]; uint8_t *p; size_t len; } CBase;
typedef struct { uint32_t pack, stored; double off; uint8_t *p; size_t len; } CFrame;
typedef struct Zc {
  struct Zc *next;
  void *cctx, *cctxDict, *dctx;
  int level;
  CBase base[BASE_CACHE_MAX];
  int nb;
  size_t baseBytes;
  CFrame frame[FRAME_CACHE_MAX];
  int nf;
  Buf dst, dst2, body, dict, rd, fb, members;
} Zc;
static pthread_mutex_t zcMu = PTHREAD_MUTEX_INITIALIZER;
static Zc *zcIdle;

static void zcFree(Zc *c) {
  if (!c) return;
  if (c->cctx) Z.freeCCtx(c->cctx);
  if (c->cctxDict) Z.freeCCtx(c->cctxDict);
  if (c->dctx) Z.freeDCtx(c->dctx);
  for (int i = 0; i < c->nb; i++) free(c->base[i].p);
  for (int i = 0; i < c->nf; i++) free(c->frame[i].p);
  free(c->dst.p); free(c->dst2.p); free(c->body.p); free(c->dict.p); free(c->rd.p); free(c->fb.p); free(c->members.p);
  free(c);
}

static Zc *zcTake(int level) {
  pthread_mutex_lock(&zcMu);
  Zc *c = zcIdle;
  if (c) zcIdle = c->next;
  pthread_mutex_unlock(&zcMu);
  if (!c) {
    c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cctx = Z.createCCtx();
    c->cctxDict = Z.createCCtx();
    c->dctx = Z.createDCtx();
    c->level = 0x7fffffff;
    if (!c->cctx || !c->cctxDict || !c->dctx) { zcFree(c); return NULL; }
  }
  if (c->level != level) {
    /* As codec.ts sets up its context for plain chunks and frames. */
    if (Z.isError(Z.setParameter(c->cctx, ZSTD_C_LEVEL, level)) || Z.isError(Z.setParameter(c->cctx, ZSTD_C_CHECKSUM, 0)) ||
        Z.isError(Z.setParameter(c->cctx, ZSTD_C_CONTENT_SIZE, 1))) { zcFree(c); return NULL; }
    c->level = level;
  }
  return c;
}

static void zcGive(Zc *c) {
  pthread_mutex_lock(&zcMu);
  c->next = zcIdle;
  zcIdle = c;
  pthread_mutex_unlock(&zcMu);
}

/* One old chunk a delta is tried against (a task's `bases`, store/ingest-delta.ts BaseChunk). */
typedef struct {
  const uint8_t *id;
  uint32_t pack, stored, plain, fOff, fSize;
  double offset;
  uint8_t flags, hasFrame, nrefs;
  const uint8_t *refs;
} ZBase;

/* One item of a compress task (ingest-worker.ts CompressItem). */
typedef struct {
  const uint8_t *id, *data, *refs;
  const char *path;
  uint32_t len;
  double offset;
  uint8_t nrefs;
} ZItem;

typedef struct {
  Job job;
  uint8_t *spec; /* the task's bytes, copied: what JS does with its buffer meanwhile cannot matter */
  int level;
  double frameBytes, frameItemMax, sure, keep;
  const char *packDir;
  uint32_t packDirLen;
  ZBase *bases;
  uint32_t nb;
  ZItem *items;
  uint32_t ni;
  Buf desc, bodies;
  uint32_t fdPack[8];
  int fdOpen[8], nfd;
} ZJob;

static void zJobFree(Job *jb) {
  ZJob *j = (ZJob *)jb;
  free(j->spec); free(j->bases); free(j->items); free(j->desc.p); free(j->bodies.p); free(j->job.out.p);
  free(j);
}

typedef struct { const uint8_t *p; size_t len, at; int bad; } Cur;
static const uint8_t *curTake(Cur *c, size_t n) {
  if (c->bad || c->len - c->at < n) { c->bad = 1; return NULL; }
  const uint8_t *p = c->p + c->at;
  c->at += n;
  return p;
}
static uint32_t curU32(Cur *c) { uint32_t v = 0; const uint8_t *p = curTake(c, 4); if (p) memcpy(&v, p, 4); return v; }
static double curF64(Cur *c) { double v = 0; const uint8_t *p = curTake(c, 8); if (p) memcpy(&v, p, 8); return v; }
static uint8_t curU8(Cur *c) { const uint8_t *p = curTake(c, 1); return p ? *p : 0; }

static int baseCmp(const void *a, const void *b) { return memcmp(((const ZBase *)a)->id, ((const ZBase *)b)->id, 32); }

/* The task as store/ingest-c.ts encodes it (little-endian): level, frameBytes, frameItemMax,
 * sureRatio, keepRatio (float64 each); the pack directory (uint32 length, bytes); the bases
 * (uint32 count; each: id, pack u32, offset f64, stored u32, plain u32, flags u8, in-frame u8,
 * frame offset u32, frame size u32, ref count u8, refs); the items (uint32 count; each: id,
 * length u32, kind u8 (0: the bytes follow, length of them; 1: a NUL-terminated path's length
 * u32, the path with its NUL, the offset f64), ref count u8, refs). 0: malformed. */
#define Z_MAX_LEN (1u << 30) /* a chunk's or frame's length (the store's are at most 64 MiB) */
static int zParse(ZJob *j, const uint8_t *spec, size_t len) {
  Cur c = { spec, len, 0, 0 };
  double level = curF64(&c);
  j->frameBytes = curF64(&c);
  j->frameItemMax = curF64(&c);
  j->sure = curF64(&c);
  j->keep = curF64(&c);
  if (c.bad || level != level || !(j->frameBytes >= 1 && j->frameBytes <= (double)(64u << 20)) ||
      !(j->frameItemMax >= 0 && j->frameItemMax <= j->frameBytes)) return 0;
  /* As zstd clamps a level out of its range. */
  j->level = level < -131072 ? -131072 : level > 22 ? 22 : (int)level;
  j->packDirLen = curU32(&c);
  j->packDir = (const char *)curTake(&c, j->packDirLen);
  if (c.bad || j->packDirLen > PATH_MAX - 32 || memchr(j->packDir, 0, j->packDirLen)) return 0;
  j->nb = curU32(&c);
  if (c.bad || j->nb > len / 32) return 0;
  j->bases = calloc(j->nb ? j->nb : 1, sizeof *j->bases);
  if (!j->bases) return 0;
  for (uint32_t i = 0; i < j->nb && !c.bad; i++) {
    ZBase *b = &j->bases[i];
    b->id = curTake(&c, 32);
    b->pack = curU32(&c);
    b->offset = curF64(&c);
    b->stored = curU32(&c);
    b->plain = curU32(&c);
    b->flags = curU8(&c);
    b->hasFrame = curU8(&c);
    b->fOff = curU32(&c);
    b->fSize = curU32(&c);
    b->nrefs = curU8(&c);
    b->refs = curTake(&c, 32u * b->nrefs);
    if (!(b->offset >= 0 && b->offset <= 9007199254740991.0) || b->stored > Z_MAX_LEN || b->plain > Z_MAX_LEN || b->fSize > Z_MAX_LEN) c.bad = 1;
  }
  if (c.bad) return 0;
  qsort(j->bases, j->nb, sizeof *j->bases, baseCmp);
  j->ni = curU32(&c);
  if (c.bad || j->ni > len / 32) return 0;
  j->items = calloc(j->ni ? j->ni : 1, sizeof *j->items);
  if (!j->items) return 0;
  for (uint32_t i = 0; i < j->ni && !c.bad; i++) {
    ZItem *it = &j->items[i];
    it->id = curTake(&c, 32);
    it->len = curU32(&c);
    uint8_t kind = curU8(&c);
    if (kind == 0) {
      it->data = curTake(&c, it->len);
    } else if (kind == 1) {
      uint32_t pl = curU32(&c);
      it->path = (const char *)curTake(&c, pl);
      it->offset = curF64(&c);
      if (c.bad || pl == 0 || pl > PATH_MAX || it->path[pl - 1] != 0 || memchr(it->path, 0, pl - 1) || !(it->offset >= 0 && it->offset <= 9007199254740991.0) ||
          it->len > Z_MAX_LEN) c.bad = 1;
    } else {
      c.bad = 1;
    }
    it->nrefs = curU8(&c);
    it->refs = curTake(&c, 32u * it->nrefs);
  }
  return !c.bad && c.at == len;
}

static const ZBase *zFind(ZJob *j, const uint8_t *id) {
  ZBase key = { .id = id };
  return bsearch(&key, j->bases, j->nb, sizeof *j->bases, baseCmp);
}

/* A pack's descriptor for this job (a few kept open, the oldest closed first). */
static int zPackFd(ZJob *j, uint32_t pack) {
  for (int i = 0; i < j->nfd; i++) if (j->fdPack[i] == pack) return j->fdOpen[i];
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%.*s/pack-%06u.pack", (int)j->packDirLen, j->packDir, pack);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  if (j->nfd == 8) {
    close(j->fdOpen[0]);
    memmove(j->fdOpen, j->fdOpen + 1, 7 * sizeof(int));
    memmove(j->fdPack, j->fdPack + 1, 7 * sizeof(uint32_t));
    j->nfd--;
  }
  j->fdOpen[j->nfd] = fd;
  j->fdPack[j->nfd++] = pack;
  return fd;
}

/* preadStored: the stored bytes of `b` into c->body; NULL when the pack cannot be read or is
 * short (the base is then unusable, as loadBase's catch makes it). */
static const uint8_t *zStored(ZJob *j, Zc *c, const ZBase *b) {
  int fd = zPackFd(j, b->pack);
  if (fd < 0 || !room(&c->body, b->stored ? b->stored : 1)) return NULL;
  size_t n = 0;
  while (n < b->stored) {
    ssize_t r = pread(fd, c->body.p + n, b->stored - n, (off_t)b->offset + (off_t)n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  return n == b->stored ? (const uint8_t *)c->body.p : NULL;
}

static const uint8_t *zRemember(Zc *c, const uint8_t *id, uint8_t *p, size_t len) {
  if (c->nb == BASE_CACHE_MAX) {
    c->baseBytes -= c->base[0].len;
    free(c->base[0].p);
    memmove(c->base, c->base + 1, (size_t)--c->nb * sizeof *c->base);
  }
  memcpy(c->base[c->nb].id, id, 32);
  c->base[c->nb].p = p;
  c->base[c->nb].len = len;
  c->nb++;
  c->baseBytes += len;
  /* The oldest out while over budget, never the one just made (the caller is using it). */
  while (c->baseBytes > BASE_CACHE_BYTES && c->nb > 1) {
    c->baseBytes -= c->base[0].len;
    free(c->base[0].p);
    memmove(c->base, c->base + 1, (size_t)--c->nb * sizeof *c->base);
  }
  return p;
}

/* A shared frame's plain bytes (decoded once, kept while recently used), or NULL. */
static const uint8_t *zFrame(ZJob *j, Zc *c, const ZBase *b) {
  for (int i = 0; i < c->nf; i++) {
    CFrame *f = &c->frame[i];
    if (f->pack == b->pack && f->off == b->offset && f->stored == b->stored) {
      CFrame hit = *f;
      memmove(c->frame + i, c->frame + i + 1, (size_t)(c->nf - i - 1) * sizeof *f);
      c->frame[c->nf - 1] = hit;
      return hit.len == b->fSize ? hit.p : NULL;
    }
  }
  const uint8_t *body = zStored(j, c, b);
  if (!body) return NULL;
  uint8_t *p = malloc(b->fSize ? b->fSize : 1);
  if (!p) return NULL;
  size_t n = Z.decompressDCtx(c->dctx, p, b->fSize, body, b->stored);
  if (Z.isError(n) || n != b->fSize) { free(p); return NULL; }
  if (c->nf == FRAME_CACHE_MAX) {
    free(c->frame[0].p);
    memmove(c->frame, c->frame + 1, (size_t)--c->nf * sizeof *c->frame);
  }
  c->frame[c->nf++] = (CFrame){ b->pack, b->stored, b->offset, p, b->fSize };
  return p;
}

/* ingest-worker.ts loadBase: the verified plain bytes of old chunk `id` (valid until the next
 * base is decoded), or NULL when it cannot be had (not in the task's bases, a chain deeper than
 * 8, a pack that cannot be read, bytes that do not decode or do not match the id). */
static const uint8_t *zBase(ZJob *j, Zc *c, const uint8_t *id, int depth, size_t *len) {
  for (int i = 0; i < c->nb; i++) {
    if (memcmp(c->base[i].id, id, 32) == 0) {
      CBase hit = c->base[i];
      memmove(c->base + i, c->base + i + 1, (size_t)(c->nb - i - 1) * sizeof hit);
      c->base[c->nb - 1] = hit;
      *len = hit.len;
      return hit.p;
    }
  }
  const ZBase *b = zFind(j, id);
  if (!b || depth > 8) return NULL;
  uint8_t got[32];
  if (b->hasFrame) {
    const uint8_t *f = zFrame(j, c, b);
    if (!f || (size_t)b->fOff + b->plain > b->fSize) return NULL;
    blake3Of(f + b->fOff, b->plain, got);
    if (memcmp(got, id, 32) != 0) return NULL;
    uint8_t *p = malloc(b->plain ? b->plain : 1);
    if (!p) return NULL;
    memcpy(p, f + b->fOff, b->plain);
    *len = b->plain;
    return zRemember(c, id, p, b->plain);
  }
  Buf dict = {0};
  for (uint8_t r = 0; r < b->nrefs; r++) {
    size_t rl = 0;
    const uint8_t *rb = zBase(j, c, b->refs + 32u * r, depth + 1, &rl);
    if (!rb || !put(&dict, rb, rl)) { free(dict.p); return NULL; }
  }
  const uint8_t *body = zStored(j, c, b);
  uint8_t *p = body ? malloc(b->plain ? b->plain : 1) : NULL;
  int ok = p != NULL;
  if (ok && b->flags == 0) {
    ok = b->stored == b->plain;
    if (ok) memcpy(p, body, b->plain);
  } else if (ok && (b->flags == 1 || b->flags == 2)) {
    size_t n = b->flags == 2 ? (dict.p ? Z.decompressUsingDict(c->dctx, p, b->plain, body, b->stored, dict.p, dict.len) : (size_t)-1)
                             : Z.decompressDCtx(c->dctx, p, b->plain, body, b->stored);
    ok = !Z.isError(n) && n == b->plain;
  } else {
    ok = 0;
  }
  free(dict.p);
  if (ok) {
    blake3Of(p, b->plain, got);
    ok = memcmp(got, id, 32) == 0;
  }
  if (!ok) { free(p); return NULL; }
  *len = b->plain;
  return zRemember(c, id, p, b->plain);
}

/* encodeChunkScratch (store/codec.ts): zstd when it saves at least 1/32, else raw (the plain
 * bytes themselves). -1: a zstd error or no memory. */
static int zPlain(Zc *c, Buf *dst, const uint8_t *plain, size_t len, int *flags, const uint8_t **body, size_t *n) {
  if (len >= 64) {
    size_t cap = Z.bound(len);
    if (!room(dst, cap)) return -1;
    size_t r = Z.compress2(c->cctx, dst->p, cap, plain, len);
    if (Z.isError(r)) return -1;
    if (r < len - (len >> 5)) {
      *flags = 1;
      *body = (const uint8_t *)dst->p;
      *n = r;
      return 0;
    }
  }
  *flags = 0;
  *body = plain;
  *n = len;
  return 0;
}

static int zEmit(ZJob *j, uint32_t item, int flags, const uint8_t *body, size_t n) {
  uint8_t k = 0, f = (uint8_t)flags;
  uint32_t n32 = (uint32_t)n;
  return put(&j->desc, &k, 1) && put(&j->desc, &item, 4) && put(&j->desc, &f, 1) && put(&j->desc, &n32, 4) && put(&j->bodies, body, n);
}

/* FrameBuilder.seal: the collected small chunks as one zstd frame when there are several and
 * they compress, else each alone. 0 ok, -1 error. */
static int zSeal(ZJob *j, Zc *c) {
  uint32_t nm = (uint32_t)(c->members.len / 8);
  if (nm == 0) return 0;
  size_t flen = c->fb.len;
  const uint32_t *m = (const uint32_t *)c->members.p;
  int flags;
  const uint8_t *body;
  size_t n;
  c->members.len = 0;
  c->fb.len = 0;
  if (nm > 1) {
    if (zPlain(c, &c->dst, (const uint8_t *)c->fb.p, flen, &flags, &body, &n) < 0) return -1;
    if (flags == 1) {
      uint8_t k = 1, id[32];
      uint32_t f32 = (uint32_t)flen, n32 = (uint32_t)n;
      blake3Of((const uint8_t *)c->fb.p, flen, id);
      if (!put(&j->desc, &k, 1) || !put(&j->desc, id, 32) || !put(&j->desc, &f32, 4) || !put(&j->desc, &n32, 4) || !put(&j->desc, &nm, 4) ||
          !put(&j->desc, m, (size_t)nm * 8) || !put(&j->bodies, body, n)) return -1;
      return 0;
    }
  }
  for (uint32_t i = 0; i < nm; i++) {
    uint32_t item = m[2 * i], off = m[2 * i + 1];
    if (zPlain(c, &c->dst, (const uint8_t *)c->fb.p + off, j->items[item].len, &flags, &body, &n) < 0 || !zEmit(j, item, flags, body, n)) return -1;
  }
  return 0;
}

static int zFrameAdd(ZJob *j, Zc *c, uint32_t item, const uint8_t *plain, size_t len) {
  uint32_t m[2] = { item, (uint32_t)c->fb.len };
  if (!room(&c->fb, (size_t)j->frameBytes + (size_t)j->frameItemMax) || !put(&c->members, m, 8)) return -1;
  memcpy(c->fb.p + c->fb.len, plain, len);
  c->fb.len += len;
  return (double)c->fb.len >= j->frameBytes ? zSeal(j, c) : 0;
}

/* ingest-worker.ts compressItems, item by item. */
static void zRun(ZJob *j, Zc *c) {
  int fd = -1;
  const char *fdPath = NULL;
  int st = 0;
  c->fb.len = 0;
  c->members.len = 0;
  for (uint32_t i = 0; st == 0 && i < j->ni; i++) {
    const ZItem *it = &j->items[i];
    const uint8_t *plain;
    size_t len = it->len;
    if (it->data) {
      plain = it->data;
    } else {
      if (!fdPath || strcmp(fdPath, it->path) != 0) {
        if (fd >= 0) close(fd);
        fd = open(it->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        fdPath = it->path;
        if (fd < 0) { st = 1; break; }
      }
      if (!room(&c->rd, len ? len : 1)) { st = -1; break; }
      size_t n = 0;
      while (n < len) {
        ssize_t r = pread(fd, c->rd.p + n, len - n, (off_t)it->offset + (off_t)n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
      }
      uint8_t got[32];
      if (n == len) blake3Of((const uint8_t *)c->rd.p, len, got);
      /* The file changed between scan and compress: never bytes under a wrong id. */
      if (n != len || memcmp(got, it->id, 32) != 0) { st = 1; break; }
      plain = (const uint8_t *)c->rd.p;
    }
    if (it->nrefs > 0 && j->packDirLen > 0) {
      c->dict.len = 0;
      int have = 1;
      for (uint8_t r = 0; have && r < it->nrefs; r++) {
        size_t bl = 0;
        const uint8_t *b = zBase(j, c, it->refs + 32u * r, 0, &bl);
        have = b != NULL;
        if (have && !put(&c->dict, b, bl)) { st = -1; break; }
      }
      if (st) break;
      if (have) {
        /* A delta far smaller than the chunk wins without trying plain compression; otherwise it
         * is kept only when it beats plain by the keep ratio (reading it costs its bases too). */
        size_t cap = Z.bound(len);
        if (!room(&c->dst, cap)) { st = -1; break; }
        size_t dn = Z.compressUsingDict(c->cctxDict, c->dst.p, cap, plain, len, c->dict.p, c->dict.len, j->level);
        if (Z.isError(dn)) { st = 1; break; }
        int sure = (double)dn < (double)len * j->sure;
        int pflags = 0;
        const uint8_t *pbody = NULL;
        size_t pn = 0;
        if (!sure && zPlain(c, &c->dst2, plain, len, &pflags, &pbody, &pn) < 0) { st = 1; break; }
        if (sure || (double)dn < (double)pn * j->keep) {
          if (!zEmit(j, i, 2, (const uint8_t *)c->dst.p, dn)) st = -1;
          continue;
        }
        if ((double)len > j->frameItemMax) {
          /* The plain try's bytes are what compressing again would give. */
          if (!zEmit(j, i, pflags, pbody, pn)) st = -1;
          continue;
        }
      }
    }
    if ((double)len <= j->frameItemMax) {
      if (zFrameAdd(j, c, i, plain, len) < 0) st = -1;
      continue;
    }
    int flags;
    const uint8_t *body;
    size_t n;
    if (zPlain(c, &c->dst, plain, len, &flags, &body, &n) < 0) { st = 1; break; }
    if (!zEmit(j, i, flags, body, n)) st = -1;
  }
  if (st == 0 && zSeal(j, c) < 0) st = -1;
  if (fd >= 0) close(fd);
  j->job.status = st;
}

/* The answer (compressItemsAsync's): the descriptors' length, the descriptors, the bodies. */
static void zExecute(napi_env env, void *data) {
  ZJob *j = data;
  Zc *c = zcTake(j->level);
  /* No context (no memory for zstd's): the task goes to a worker. */
  if (!c) { j->job.status = 1; return; }
  zRun(j, c);
  /* A context whose job failed part way holds a half-built frame: emptied by zRun's start. */
  zcGive(c);
  for (int i = 0; i < j->nfd; i++) close(j->fdOpen[i]);
  j->nfd = 0;
  uint32_t dl = (uint32_t)j->desc.len;
  Buf *out = &j->job.out;
  if (j->job.status == 0 && !(room(out, 4 + j->desc.len + j->bodies.len) && put(out, &dl, 4) && put(out, j->desc.p, j->desc.len) &&
                              put(out, j->bodies.p, j->bodies.len))) j->job.status = -1;
}

/*
 * compressItemsAsync(spec: Uint8Array) -> Promise<Buffer | null>: the ingest worker's compress
 * task (store/ingest-worker.ts compressItems: delta against the task's bases, plain zstd, small
 * chunks together in shared frames) on libuv's thread pool, `spec` as zParse reads it (copied
 * at the call). The answer: a uint32 length of the descriptors, the descriptors, then the bodies
 * in their order. A descriptor: 0, item index u32, flags u8, body length u32 (a chunk alone:
 * flags 0 raw, 1 zstd, 2 zstd against its refs' bytes); or 1, the frame's id (32), plain length
 * u32, body length u32, member count u32 and per member its item index and offset (u32 each).
 * null: the task is given back (a file that cannot be read or that changed since its scan, a
 * zstd error): the caller runs it in a worker, which makes its error.
 */
static napi_value CompressItemsAsync(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  pthread_once(&zOnce, zLoad);
  void *sp = NULL;
  size_t slen = 0;
  if (argc < 1 || !typed(env, argv[0], napi_uint8_array, &sp, &slen)) return badCall(env, 0, "compressItemsAsync", "bad arguments");
  if (!zOk) {
    napi_throw_error(env, "ENOSYS", "miqchunk.compressItemsAsync: libzstd.so.1 cannot be loaded");
    return NULL;
  }
  ZJob *j = calloc(1, sizeof *j);
  if (j) j->spec = malloc(slen ? slen : 1);
  if (!j || !j->spec) {
    free(j);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  j->job.free = zJobFree;
  memcpy(j->spec, sp, slen);
  if (!zParse(j, j->spec, slen)) {
    zJobFree(&j->job);
    return badCall(env, 0, "compressItemsAsync", "malformed task");
  }
  return jobQueue(env, &j->job, "miqchunk.compressItems", zExecute);
}

/* ingestRelease(): frees the idle read buffers and compress contexts (an ingest's end). */
static napi_value IngestRelease(napi_env env, napi_callback_info info) {
  pthread_mutex_lock(&spareMu);
  for (int i = 0; i < SPARE_BUFS; i++) {
    free(spareBuf[i].p);
    spareBuf[i].p = NULL;
  }
  pthread_mutex_unlock(&spareMu);
  pthread_mutex_lock(&zcMu);
  Zc *c = zcIdle;
  zcIdle = NULL;
  pthread_mutex_unlock(&zcMu);
  while (c) {
    Zc *next = c->next;
    zcFree(c);
    c = next;
  }
  return NULL;
}

/*
 * buildTrees(root: DirNode, all: boolean) -> (string | Buffer | DirNode)[]: store/ingest-trees.ts
 * buildCompleteTrees' pass in C. The directories of `root` without an id are visited as that
 * pass visits them (a stack from the root, then in reverse); each one ready (every entry but a
 * link has an id, or `all`) gets its encoding (objects.ts encodeTree: entries sorted by name
 * bytes) and BLAKE3 id: `id` and `size` are set on it and [id, bytes] appended to the answer.
 * The first directory that encodeTree would refuse, or that has anything this code does not
 * expect, stops the pass: it is appended alone (an odd length), built by nothing, and the caller
 * encodes it in JS, which throws encodeTree's own error for it. Runs on the JS thread (it reads
 * the skeleton's objects); no JIT.
 */
enum { TK_FILE = 1, TK_LINK = 2, TK_DIR = 3, TK_OTHER = 4 };

typedef struct {
  const uint8_t *name, *target;
  size_t nlen, tlen;
  double size;
  uint8_t code; /* encodeTree's kind byte: 1 file, 2 exe, 3 symlink, 4 dir */
  uint8_t id[32];
} TEnt;

/* Handles kept in a Buf (put grows it). */
static int handlePush(Buf *b, napi_value v) { return put(b, &v, sizeof v); }
static napi_value *handles(const Buf *b) { return (napi_value *)b->p; }
static size_t handleCount(const Buf *b) { return b->len / sizeof(napi_value); }

typedef struct {
  napi_value kT, kName, kSize, kExe, kId, kTarget, kChildren;
} TKeys;

/* A node's `t` as TK_*. */
static int nodeKind(napi_env env, const TKeys *k, napi_value node) {
  napi_value t;
  char s[8];
  size_t n = 0;
  if (napi_get_property(env, node, k->kT, &t) != napi_ok || napi_get_value_string_latin1(env, t, s, sizeof s, &n) != napi_ok) return TK_OTHER;
  if (n == 4 && memcmp(s, "file", 4) == 0) return TK_FILE;
  if (n == 4 && memcmp(s, "link", 4) == 0) return TK_LINK;
  if (n == 3 && memcmp(s, "dir", 3) == 0) return TK_DIR;
  return TK_OTHER;
}

static int isUndefined(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t == napi_undefined;
}

/* `v` as writeIdAt takes it (64 lowercase hex characters) into 32 bytes; 0 when it is not one. */
static int idBytes(napi_env env, napi_value v, uint8_t out[32]) {
  char16_t s[66];
  size_t n = 0;
  if (napi_get_value_string_utf16(env, v, s, 66, &n) != napi_ok || n != 64) return 0;
  for (int i = 0; i < 64; i++) if (s[i] >= 128 || !HEXV[s[i]]) return 0;
  for (int i = 0; i < 32; i++) {
    int hi = s[2 * i], lo = s[2 * i + 1];
    hi = hi <= '9' ? hi - '0' : hi - 'a' + 10;
    lo = lo <= '9' ? lo - '0' : lo - 'a' + 10;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 1;
}

static int tentCmp(const void *a, const void *b) {
  const TEnt *x = a, *y = b;
  size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
  int c = n ? memcmp(x->name, y->name, n) : 0;
  return c ? c : (x->nlen > y->nlen) - (x->nlen < y->nlen);
}

/* Number.isSafeInteger(v) && v >= 0 (writeU64). */
static int sizeOk(double v) {
  return v >= 0 && v <= 9007199254740991.0 && v == (double)(uint64_t)v;
}

static void putBE(uint8_t *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* encodeTree of `e[0..n)` (sorted here) into `out`; 0 where encodeTree throws. */
static int encodeEntries(TEnt *e, uint32_t n, Buf *out) {
  if (n > 1) qsort(e, n, sizeof *e, tentCmp);
  size_t len = 12;
  for (uint32_t i = 0; i < n; i++) {
    const TEnt *x = &e[i];
    if (x->nlen == 0 || x->nlen > 65535 || (x->name[0] == '.' && (x->nlen == 1 || (x->nlen == 2 && x->name[1] == '.')))) return 0;
    if (memchr(x->name, '/', x->nlen) || memchr(x->name, 0, x->nlen)) return 0;
    if (i > 0 && tentCmp(&e[i - 1], x) == 0) return 0;
    if (!sizeOk(x->size)) return 0;
    if (x->code == 3 && (x->tlen == 0 || x->tlen > 4095)) return 0;
    len += 1 + 2 + x->nlen + 8 + (x->code == 3 ? 2 + x->tlen : 32);
  }
  out->len = 0;
  if (!room(out, len)) return -1;
  uint8_t *p = (uint8_t *)out->p;
  memcpy(p, "miqtree1", 8);
  putBE(p + 8, n, 4);
  p += 12;
  for (uint32_t i = 0; i < n; i++) {
    const TEnt *x = &e[i];
    *p++ = x->code;
    putBE(p, x->nlen, 2); p += 2;
    memcpy(p, x->name, x->nlen); p += x->nlen;
    putBE(p, (uint64_t)x->size, 8); p += 8;
    if (x->code == 3) {
      putBE(p, x->tlen, 2); p += 2;
      memcpy(p, x->target, x->tlen); p += x->tlen;
    } else {
      memcpy(p, x->id, 32); p += 32;
    }
  }
  out->len = len;
  return 1;
}

/* Entry i of a directory from its node `c` (kind `tk`, id value `idv` unless a link); adds to
 * `*size` as buildCompleteTrees does. 0: anything encodeTree or this code would not take. */
static int readEntry(napi_env env, const TKeys *k, napi_value c, int tk, napi_value idv, TEnt *e, double *size) {
  napi_value v;
  void *p = NULL;
  if (tk == TK_OTHER || napi_get_property(env, c, k->kName, &v) != napi_ok || !typed(env, v, napi_uint8_array, &p, &e->nlen)) return 0;
  e->name = p ? p : (const uint8_t *)"";
  if (tk == TK_LINK) {
    if (napi_get_property(env, c, k->kTarget, &v) != napi_ok || !typed(env, v, napi_uint8_array, &p, &e->tlen)) return 0;
    e->target = p;
    e->size = (double)e->tlen;
    e->code = 3;
    return 1;
  }
  if (napi_get_property(env, c, k->kSize, &v) != napi_ok || napi_get_value_double(env, v, &e->size) != napi_ok) return 0;
  *size += e->size;
  e->code = 4;
  if (tk == TK_FILE) {
    bool exe;
    if (napi_get_property(env, c, k->kExe, &v) != napi_ok || napi_get_value_bool(env, v, &exe) != napi_ok) return 0;
    e->code = exe ? 2 : 1;
  }
  return idBytes(env, idv, e->id);
}

typedef struct {
  Buf order, kids, ids; /* handles */
  Buf kinds, starts, ents, enc;
} TPass;

static void tpassFree(TPass *t) {
  free(t->order.p); free(t->kids.p); free(t->ids.p);
  free(t->kinds.p); free(t->starts.p); free(t->ents.p); free(t->enc.p);
}

/* The pass's first half: the directories without an id from `root` down, in buildCompleteTrees'
 * order, each one's children (handles and kinds) kept. 0: out of memory. */
static int treeOrder(napi_env env, const TKeys *k, napi_value root, TPass *t) {
  Buf stack = {0};
  int ok = handlePush(&stack, root);
  while (ok && stack.len > 0) {
    stack.len -= sizeof(napi_value);
    napi_value d = handles(&stack)[handleCount(&stack)], ch, c = NULL, idv;
    uint32_t n = 0, at = (uint32_t)handleCount(&t->kids);
    ok = handlePush(&t->order, d) && put(&t->starts, &at, 4);
    if (ok && (napi_get_property(env, d, k->kChildren, &ch) != napi_ok || napi_get_array_length(env, ch, &n) != napi_ok)) {
      /* No children array: one entry of a kind readEntry refuses, so JS meets it. */
      uint8_t other = TK_OTHER;
      ok = handlePush(&t->kids, d) && put(&t->kinds, &other, 1);
      n = 0;
    }
    for (uint32_t i = 0; ok && i < n; i++) {
      uint8_t tk = TK_OTHER;
      if (napi_get_element(env, ch, i, &c) == napi_ok) tk = (uint8_t)nodeKind(env, k, c);
      ok = handlePush(&t->kids, c) && put(&t->kinds, &tk, 1);
      if (ok && tk == TK_DIR && napi_get_property(env, c, k->kId, &idv) == napi_ok && isUndefined(env, idv)) ok = handlePush(&stack, c);
    }
  }
  uint32_t end = (uint32_t)handleCount(&t->kids);
  free(stack.p);
  return ok && put(&t->starts, &end, 4);
}

/* Directory `i` of the order: 1 built (its [id, bytes] set into `res` at `*at`), 0 not ready,
 * 2 refused (JS encodes it), -1 out of memory. */
static int treeOne(napi_env env, const TKeys *k, TPass *t, uint32_t i, bool all, napi_value res, uint32_t *at) {
  const uint32_t *st = (const uint32_t *)t->starts.p;
  uint32_t s = st[i], n = st[i + 1] - s;
  const uint8_t *kinds = (const uint8_t *)t->kinds.p + s;
  napi_value *kids = handles(&t->kids) + s, d = handles(&t->order)[i];
  t->ids.len = 0;
  for (uint32_t j = 0; j < n; j++) {
    napi_value idv = NULL;
    if (kinds[j] != TK_LINK) {
      if (napi_get_property(env, kids[j], k->kId, &idv) != napi_ok) return 2;
      if (!all && isUndefined(env, idv)) return 0;
    }
    if (!handlePush(&t->ids, idv)) return -1;
  }
  if (!room(&t->ents, (n ? n : 1) * sizeof(TEnt))) return -1;
  TEnt *e = (TEnt *)t->ents.p;
  double size = 0;
  for (uint32_t j = 0; j < n; j++) if (!readEntry(env, k, kids[j], kinds[j], handles(&t->ids)[j], &e[j], &size)) return 2;
  int r = encodeEntries(e, n, &t->enc);
  if (r <= 0) return r < 0 ? -1 : 2;
  uint8_t h[32];
  char hex[64];
  blake3Of((const uint8_t *)t->enc.p, t->enc.len, h);
  for (int j = 0; j < 32; j++) {
    hex[2 * j] = "0123456789abcdef"[h[j] >> 4];
    hex[2 * j + 1] = "0123456789abcdef"[h[j] & 15];
  }
  napi_value idv, sv, bv;
  void *copy;
  if (napi_create_string_latin1(env, hex, 64, &idv) != napi_ok || napi_create_double(env, size, &sv) != napi_ok ||
      napi_create_buffer_copy(env, t->enc.len, t->enc.p, &copy, &bv) != napi_ok) return -1;
  napi_set_property(env, d, k->kId, idv);
  napi_set_property(env, d, k->kSize, sv);
  napi_set_element(env, res, (*at)++, idv);
  napi_set_element(env, res, (*at)++, bv);
  return 1;
}

static napi_value BuildTrees(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], res;
  bool all = false;
  napi_valuetype rt;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_typeof(env, argv[0], &rt) != napi_ok || rt != napi_object || napi_get_value_bool(env, argv[1], &all) != napi_ok) return badCall(env, 0, "buildTrees", "bad arguments");
  TKeys k;
  napi_create_string_latin1(env, "t", NAPI_AUTO_LENGTH, &k.kT);
  napi_create_string_latin1(env, "name", NAPI_AUTO_LENGTH, &k.kName);
  napi_create_string_latin1(env, "size", NAPI_AUTO_LENGTH, &k.kSize);
  napi_create_string_latin1(env, "exe", NAPI_AUTO_LENGTH, &k.kExe);
  napi_create_string_latin1(env, "id", NAPI_AUTO_LENGTH, &k.kId);
  napi_create_string_latin1(env, "target", NAPI_AUTO_LENGTH, &k.kTarget);
  napi_create_string_latin1(env, "children", NAPI_AUTO_LENGTH, &k.kChildren);
  napi_create_array(env, &res);
  napi_value rootId;
  if (napi_get_property(env, argv[0], k.kId, &rootId) != napi_ok) return NULL;
  if (!isUndefined(env, rootId)) return res;
  TPass t = {0};
  int ok = treeOrder(env, &k, argv[0], &t);
  uint32_t at = 0;
  for (size_t i = handleCount(&t.order); ok && i-- > 0;) {
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    int r = treeOne(env, &k, &t, (uint32_t)i, all, res, &at);
    napi_close_handle_scope(env, scope);
    if (r < 0) ok = 0;
    if (r == 2) {
      napi_set_element(env, res, at, handles(&t.order)[i]);
      break;
    }
  }
  tpassFree(&t);
  if (!ok) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  return res;
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
  napi_create_function(env, "walkTree", NAPI_AUTO_LENGTH, WalkTree, NULL, &fn);
  napi_set_named_property(env, exports, "walkTree", fn);
#ifdef MIQ_HAVE_BLAKE3
  for (const char *c = "0123456789abcdef"; *c; c++) HEXV[(uint8_t)*c] = 1;
  napi_create_function(env, "hashFiles", NAPI_AUTO_LENGTH, HashFiles, NULL, &fn);
  napi_set_named_property(env, exports, "hashFiles", fn);
  napi_create_function(env, "hashFilesAsync", NAPI_AUTO_LENGTH, HashFilesAsync, NULL, &fn);
  napi_set_named_property(env, exports, "hashFilesAsync", fn);
  napi_create_function(env, "scanFilesAsync", NAPI_AUTO_LENGTH, ScanFilesAsync, NULL, &fn);
  napi_set_named_property(env, exports, "scanFilesAsync", fn);
  napi_create_function(env, "zstdReady", NAPI_AUTO_LENGTH, ZstdReady, NULL, &fn);
  napi_set_named_property(env, exports, "zstdReady", fn);
  napi_create_function(env, "compressItemsAsync", NAPI_AUTO_LENGTH, CompressItemsAsync, NULL, &fn);
  napi_set_named_property(env, exports, "compressItemsAsync", fn);
  napi_create_function(env, "ingestRelease", NAPI_AUTO_LENGTH, IngestRelease, NULL, &fn);
  napi_set_named_property(env, exports, "ingestRelease", fn);
  napi_create_function(env, "buildTrees", NAPI_AUTO_LENGTH, BuildTrees, NULL, &fn);
  napi_set_named_property(env, exports, "buildTrees", fn);
#endif
  return exports;
}
