/*
 * miqfuse: a small N-API binding over libfuse 3's low-level API (issue 11).
 *
 * One loop thread per mount reads /dev/fuse and turns each request into a message for
 * JavaScript (a thread-safe function with an unbounded queue, called non-blocking, so the loop
 * thread never waits on the JS thread). JavaScript answers later, by a small integer "slot"
 * that stands for the fuse_req_t: a slot is answered at most once (a second answer throws
 * instead of touching a freed request), and the session is destroyed only when no request is
 * queued, unanswered, or inside a notification.
 *
 * Cache invalidations (notify_inval_entry / notify_inval_inode) run on the libuv pool, never on
 * the JS thread: the kernel may hold the parent's lock for a lookup that only JS can answer.
 *
 * Small files whose verified content JavaScript already holds are handed to C (offer) by node
 * id, and their READs are answered here on the loop thread, never reaching JavaScript: a cold
 * read of many small files then pays one round trip to JavaScript per file (the LOOKUP) instead
 * of two. Only bytes JavaScript has checked against their BLAKE3 id are ever offered. An entry
 * leaves once as many bytes as it holds have been served (the kernel keeps the pages), when the kernel
 * forgets the node, or when the table is over its byte budget (oldest first).
 *
 * And once the kernel knows a node whose bytes are offered (its LOOKUP answered), a separate
 * thread pushes them into the page cache (notify_store), so the READ mostly never comes. Never
 * from the loop thread: notify_store waits for page locks that a READ in flight holds, and only
 * the loop thread (or JS) answers that READ.
 *
 * Likewise the listings of immutable directories (JS registers a directory's entries, node ids
 * included, once it knows them): a LOOKUP of a registered name and a READDIR(PLUS) of a
 * registered directory are answered here, and JS hears of them as messages (OP_LOOKED,
 * OP_LISTED, in order with FORGETs, so its lookup counts stay right): a cold find paid two round
 * trips to JS per directory. A registered listing never changes: only directories whose content
 * is fixed by their node id are registered (never `usr`, whose entries change on a switch). JS
 * bounds what is registered (unnames); OP_UNNAMED tells it when the nodes of a dropped listing
 * can no longer be handed out. A listing registered from its tree (namesTree) has its file nodes
 * here (see "File nodes"): their lookup counts and FORGETs never reach JS.
 *
 * Teardown: stop() wakes the loop (an eventfd beside /dev/fuse in poll), and when the loop ends,
 * for whatever reason, /dev/fuse is replaced by /dev/null under the same descriptor (dup2): that
 * drops the last device reference, so the kernel aborts the connection (every waiting process
 * gets an error instead of hanging), while answers still in flight from JS write harmlessly
 * into /dev/null instead of into whatever file might reuse a closed descriptor number.
 */
#define FUSE_USE_VERSION 34
#define _GNU_SOURCE
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#ifdef MIQ_HAVE_BLAKE3
#include "blake3.h"
#endif
#include <unistd.h>

/* OP_LOOKED: a LOOKUP answered here from a registered name (no reply needed: JS counts it).
 * OP_LISTED (ino, first, count): a READDIRPLUS of a registered directory answered here, whose
 * entries [first, first + count) the kernel now counts as looked up; OP_UNLISTED the same
 * entries when the reply did not reach the kernel after all. OP_UNNAMED (ino): a directory's
 * registration is gone; everything this loop answered from it was posted before. OP_STREAMED
 * (ino, size, off): a READ of a stream answered here (see "Streams"), for JS's readahead.
 * OP_FREED (ino): a file node of this binding's table (see "File nodes") that JS asked about
 * is gone (the kernel forgot it and no registered listing holds it): JS drops what it kept. */
enum { OP_LOOKUP = 1, OP_FORGET, OP_GETATTR, OP_READLINK, OP_READ, OP_READDIRPLUS, OP_READDIR, OP_STATFS, OP_GETXATTR, OP_LISTXATTR, OP_END, OP_LOOKED,
       OP_LISTED, OP_UNLISTED, OP_UNNAMED, OP_STREAMED, OP_FREED, OP_BATCH, OP_COUNT };

typedef struct msg {
  int op;
  fuse_req_t req;
  /* When posted, for the queue figures (requests only): monotonic ns, messages queued then,
   * messages taken and the JS thread's ns in handlers by then; MIQ_DEBUG_QUEUE also the JS
   * thread's CPU and runqueue wait (ns). */
  uint64_t t0, ahead, tn0, tr0, cbn0, cbr0, cpu0, rq0;
  uint64_t ino;
  uint64_t a; /* size, nlookup, count */
  int64_t b;  /* offset */
  size_t len; /* name bytes, or forget pairs */
  char data[];
} msg_t;

/* The notices of one OP_BATCH message (see post): op, ino, a, b per record, as JS gets them. */
typedef struct nbatch { size_t n, cap; double *r; } nbatch_t;

/* One offered file: its whole content. */
typedef struct ready {
  uint64_t ino;
  size_t len;
  size_t served; /* bytes answered so far: the entry leaves once they cover the file */
  struct ready *hnext, *prev, *next; /* hash chain; age list (head = oldest) */
  char data[];
} ready_t;

#define RBUCKETS 4096

/* A registered directory: its listing as JS packed it (see replyDir), kept whole; its names
 * point into that copy. */
struct named;
typedef struct dirl {
  uint64_t ino;
  uint32_t count;
  double timeout;
  uint8_t *packed;
  size_t plen;
  uint32_t *offs;        /* byte offset of entry k in packed */
  struct named *names;   /* count of them, one block */
  struct linkn *links;   /* its symlinks' targets, nlinks of them, one block */
  uint32_t nlinks;
  struct fnode **fn;     /* namesTree: entry k's file node (NULL: not a file), else NULL */
  struct dirl *hnext;
} dirl_t;

/* File nodes (namesTree): one per (content id, exec bit), numbered from FBASE up, counted and
 * forgotten here; JS makes an object for one only when it needs one (a READ, an xattr, a
 * lookup it answers). */
#define FBASE (1ull << 40)
typedef struct fnode {
  uint64_t ino, nlookup, parent;
  double size;
  uint32_t kept, index;  /* registered listings holding it; its first listing's entry */
  uint8_t id[32];
  uint8_t exe, js;       /* js: JS asked about it (OP_FREED when it goes) */
  struct fnode *idnext, *inonext;
} fnode_t;

/* One registered name: (parent, name) -> entry k of its directory's listing. */
typedef struct named {
  uint64_t parent;
  const char *name;
  uint32_t len, k;
  dirl_t *dir;
  struct named *hnext;
} named_t;

/* Streams: the verified chunks of a large file read in order, offered by the decode threads as
 * they finish (chunkOffer), by node and file offset; READs they cover are answered here. */
typedef struct seg {
  uint64_t off;
  size_t len, served, cap;
  struct seg *next;          /* in its stream, by offset */
  struct seg *aprev, *anext; /* age list (head = oldest) */
  struct stream *st;
  char *data;
} seg_t;
/* A range a decode thread is working on (JS registered it before sending the task). */
typedef struct prom { uint64_t off, end; struct prom *next; } prom_t;
/* A READ waiting for promised chunks. */
typedef struct park { fuse_req_t req; uint64_t off; size_t size; struct park *next; } park_t;
typedef struct stream {
  uint64_t ino, size;
  /* OP_STREAMED is posted for a READ answered here only while fewer than `low` bytes past its
   * end are offered or promised (0: for every READ); see sshort. */
  uint64_t low;
  seg_t *segs;
  prom_t *proms;
  park_t *parked;
  struct stream *hnext;
} stream_t;
#define SBUCKETS 256
#define SFREE 48

/* A registered symlink: node -> its target (in its directory's packed copy, after the name). */
typedef struct linkn {
  uint64_t ino;
  const char *target;
  uint32_t len;
  dirl_t *dir;
  struct linkn *hnext;
} linkn_t;

#define LBUCKETS (1u << 12)
#define NBUCKETS (1u << 16)
#define DBUCKETS (1u << 14)

/* Chunk maps (see "Chunk maps" below): a file node's chunks, where each lies in a pack, and
 * their ids. */
typedef struct cchunk {
  uint64_t at, off; /* at: the chunk's first byte in the file; off: its body in its pack */
  uint32_t pack, stored, plain, flags, foff, fsize;
  uint8_t id[32];
} cchunk_t;
typedef struct cmap {
  uint64_t ino, size;
  uint32_t n;       /* chunks, in file order */
  uint32_t advised; /* chunks [0, advised) had their pack bytes asked of the kernel (cadvise) */
  int broken;       /* a chunk failed its check or its pack could not be read: JS answers */
  struct cmap *hnext, *prev, *next; /* hash chain; age list (head = oldest) */
  cchunk_t ch[];
} cmap_t;
#define CBUCKETS 4096
#define CMAPS 65536
/* Chunks held by all maps at most (72 bytes each): a large file's map is one entry per chunk
 * (the bench's 117 MB file: ~715). */
#define CCHUNKS (1u << 18)
#define CWORKERS 2
/* Decoded chunks the read threads share (see cshared): only chunks a READ covers in part, i.e.
 * the ones that straddle a READ's ends, so its neighbour READ (often on the other thread, at the
 * same moment) does not decode them again. */
#define CSLOTS 8
typedef struct cslot {
  uint8_t id[32];
  int state; /* 0 free, 1 being decoded by a thread, 2 verified bytes */
  uint64_t tick;
  char *data;
  size_t len, cap;
} cslot_t;
typedef struct cjob { fuse_req_t req; uint64_t ino, off; size_t size; struct cjob *next; } cjob_t;
/* A node whose map JS is about to hand (a small file just looked up), until `until` (monotonic
 * ns), and the READs of it held meanwhile. */
typedef struct cpend { uint64_t ino, until; park_t *parked; struct cpend *hnext; } cpend_t;
#define PBUCKETS 1024
#define PENDS 4096
typedef struct cpack { uint32_t pack; int fd; char *path; } cpack_t;

typedef struct session {
  struct fuse_session *se;
  napi_threadsafe_function tsfn;
  pthread_t thread;
  int thread_started;
  int evfd;
  int fd;
  atomic_int queued;      /* messages in the tsfn queue that carry a request */
  /* Notices (see post): the batch still open to them (an OP_BATCH message posted and not yet
   * taken, and no request posted since), under bmu, which also orders every post; the JS
   * thread's array they are handed in (a Float64Array), its records, and the largest batch. */
  pthread_mutex_t bmu;
  msg_t *bopen;
  napi_ref bref;
  double *bdata;
  size_t bcap;
  atomic_ullong bmax;
  int bdelay;            /* us the loop thread holds a batch it opened before posting it (MIQ_MOUNT_NOTICE_HOLD_US) */
  int ldelay;            /* the same for a batch of nothing but OP_LISTED (MIQ_MOUNT_LISTED_HOLD_US; see tsfn_post) */
  int blisted;           /* the held batch has nothing but OP_LISTED so far (bmu) */
  msg_t *bheld;          /* that batch, opened and not yet posted (bmu), and when it was opened */
  uint64_t bheld_t;
  int spin;               /* us the loop thread polls /dev/fuse after a request before blocking (MIQ_MOUNT_SPIN_US; see loop) */
  atomic_int stopping;    /* stop() was called (the spin ends at it as poll() does at the eventfd) */
  atomic_ullong spun;     /* requests the loop thread took while spinning */
  atomic_int works;       /* notifications on the pool */
  int ended;              /* the loop thread has finished (JS thread view) */
  int dropping;           /* answer everything still arriving with EIO */
  int destroyed;
  fuse_req_t *slots;      /* JS thread only */
  uint32_t *gens;
  /* MIQ_DEBUG_QUEUE only: per slot, the request's op, node, when it was posted and taken, and the
   * JS thread's CPU clock when taken. */
  struct qslot { uint64_t t0, tt, cpu, ino; int op; } *qs;
  uint32_t nslots, cap, used;
  uint32_t *free_list;
  uint32_t nfree;
  atomic_ullong counts[OP_COUNT];
  /* What the kernel offered and what we took (for status and tests). */
  unsigned max_write, max_readahead, want;
  /* Offered files (loop thread reads, JS thread writes). */
  pthread_mutex_t rmu;
  ready_t *rb[RBUCKETS];
  ready_t *rhead, *rtail;
  size_t rbytes, rcap;
  atomic_ullong rserved, roffered, rthreads;
  /* Registered names (loop thread reads, JS thread writes). */
  pthread_mutex_t nmu;
  named_t **nb;
  dirl_t **db;
  linkn_t **lb;
  size_t nnames, ndirs, nbytes;
  atomic_ullong nserved, dserved, nmissed, lserved;
  /* File nodes (nmu): by id and by node id, fcap buckets each; the next number. */
  fnode_t **fid, **fino;
  size_t fcap, fcount;
  uint64_t fnext;
  atomic_ullong fmade, ffreed, fattr;
  /* Directories whose attributes JS fixed for the mount's life (attrs; nmu): the root, whose
   * GETATTR every program start through a fresh mount sends (a round trip to JS each). */
  struct { uint64_t ino; uint32_t mode; double size, timeout; } fixed[8];
  int nfixed;
  atomic_ullong dattr;
  /* Nodes whose offered bytes are to be pushed (notify thread). */
  pthread_mutex_t qmu;
  pthread_cond_t qcv;
  uint64_t *q;
  size_t qhead, qlen, qcap;
  int qstop, qstarted, qoff;
  pthread_t qthread;
  atomic_ullong pushed, pushfail, pushlate, pushpins;
  /* The CPU the loop thread last answered a LOOKUP on (-1: none yet, or MIQ_MOUNT_PUSH_PIN=0):
   * the pusher runs there (see pusher). */
  atomic_int qcpu;
  int qpinoff;
  /* Streams (loop thread, decode threads and JS thread; smu). */
  pthread_mutex_t smu;
  stream_t *sb[SBUCKETS];
  seg_t *shead, *stail;
  size_t sbytes, scap;
  char *sfree[SFREE];    /* blocks of freed segments, reused (no fresh pages to fault in) */
  size_t sfreecap[SFREE];
  int nsfree;
  atomic_int nparked;
  atomic_ullong sserved, sparked, sreposted, soffered;
  /* Queue figures: messages posted and taken, the JS thread's ns in handlers of notices and of
   * requests; per request taken (JS thread only): count, ns waited (sum, max), messages queued
   * ahead when posted (sum, max), notices and requests taken while it waited, the ns of those. */
  atomic_ullong posted, takenn, takenr, cbn, cbr;
  uint64_t qreqs, qwait, qwaitmax, qahead, qaheadmax, qnotes, qreqsbefore, qnotens, qreqns;
  int qdebug;            /* MIQ_DEBUG_QUEUE: a line per request taken */
  clockid_t jsclock;     /* the JS thread's CPU clock */
  int jssched;           /* its /proc/.../schedstat */
  int handle;            /* index in g_sess, for the decode threads */
  atomic_int users;      /* decode threads inside chunkOffer */
  /* Chunk maps (cmu) and the READs the read threads answer from them (jmu). */
  pthread_mutex_t cmu;
  cmap_t *cb[CBUCKETS];
  cmap_t *chead, *ctail;
  size_t ncmaps;
  cpack_t *packs;
  size_t npacks, packcap;
  pthread_mutex_t jmu;
  pthread_cond_t jcv;
  cjob_t *jhead, *jtail;
  int jstop, nworkers;
  pthread_t workers[CWORKERS];
  atomic_int cjobs;      /* READs handed to the read threads and not answered yet */
  atomic_ullong cmapped, cserved, ctojs, cfailed, clarge, cshares;
  size_t nmchunks;       /* chunks held by all maps (cmu) */
  /* Nodes whose small-file map is on its way from JS (cmu; see "Pending maps"), the READs held
   * for them, and the size bound and hold time JS set (pendMaps; 0: off). */
  struct cpend **pb;
  size_t npend;
  uint64_t pendmax, pendns;
  atomic_int cparkn;     /* READs held for a pending map */
  atomic_ullong cpended, cparked, cparkmap, cparkoffer, cparkjs;
  pthread_mutex_t kmu;   /* the shared decoded chunks */
  pthread_cond_t kcv;
  cslot_t kslots[CSLOTS];
  uint64_t ktick;
  struct uset *u;         /* FUSE over io_uring (MIQ_MOUNT_URING), or NULL */
} session_t;

static void fill_entry(struct fuse_entry_param *e, double ino, double mode, double size, double et, double at);
static void fill_attr(struct stat *st, double ino, double mode, double size);
static void cfree(char **b, size_t *cap);

#define NAPI(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "miqfuse: " #call " failed"); return NULL; } } while (0)

static uint64_t now_ns(clockid_t c) {
  struct timespec t;
  if (clock_gettime(c, &t) != 0) return 0;
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* The JS thread's runqueue wait so far (ns), from its schedstat; 0 when unknown. */
static uint64_t js_runq(session_t *s) {
  char b[128];
  if (s->jssched < 0) return 0;
  ssize_t n = pread(s->jssched, b, sizeof b - 1, 0);
  if (n <= 0) return 0;
  b[n] = 0;
  unsigned long long run = 0, wait = 0;
  return sscanf(b, "%llu %llu", &run, &wait) == 2 ? wait : 0;
}

/*
 * Messages reach JS through one thread-safe function, in the order posted: requests the kernel
 * waits on (LOOKUP, READ, GETATTR, a READ handed back by a stream, ...) and notices (OP_LOOKED,
 * OP_LISTED, OP_STREAMED, FORGETs, OP_UNNAMED, OP_END) alike. JS relies on that order beyond its
 * lookup counts: a file's OP_LOOKED counts its directory's looks before its READ is seen (a READ
 * taken first left the directory's batch unstarted; fuse-needs §34).
 *
 * The queue figures (state().counts, MIQ_DEBUG_QUEUE) tell how long a request waited from its
 * post to the JS thread taking it and what the JS thread did meanwhile. Measured (issue 11,
 * fuse-needs §34): in python's cold start a READ that reaches JS finds 0-3 messages ahead of it,
 * the notice handlers that run while READs wait are 1-4 ms a start, and the READs' waits here
 * (10-30 ms a start) are mostly the JS thread's other work and runqueue waits; handing requests
 * to JS ahead of notices was neutral in A/Bs and was not kept. `ahead` and the counts taken
 * meanwhile are exact for messages of one posting thread (others may race by one or two); they
 * count notices one by one, batched or not.
 *
 * Notices travel in batches: the first notice after a request opens one (an OP_BATCH message
 * posted in its place, whose records the next notices join while it is open), any request (or
 * OP_END) closes it, and the JS thread closes it when it takes the message. So JS pays one call
 * (and one run of the microtasks Node makes after each) per batch, not per notice, and the order
 * stays the one posted: a batch holds only notices posted after every request ahead of it and
 * before every request behind it. Every post and every join happens under bmu (a notice posted
 * under nmu, as OP_LOOKED, is joined under it too: nmu, then bmu, never the other way).
 * A batch the loop thread opens is held up to bdelay us (MIQ_MOUNT_NOTICE_HOLD_US, default 1000)
 * before it is posted (the loop's poll times out for it), or until a request is posted: posted at
 * once, the batches did not form, as the JS thread keeps up with a cold read's or walk's notices
 * and was woken for each (0.93-0.98 batches a notice; neutral). Held 1 ms: ~6 notices a batch in
 * the cold read, ~7 in the walk, and the JS thread's and the server's CPU lower (fuse-needs §43).
 * A batch of nothing but OP_LISTED (a walk: find, du) is held up to ldelay us
 * (MIQ_MOUNT_LISTED_HOLD_US, default 8000) instead: ~550 batches a cold find of the bench tree
 * became ~140, the server's CPU and the walk's wall lower (fuse-needs §44); JS registers the
 * listings ahead of the walk (fs/inodes.ts registerSubdirs) far enough that the later notice
 * costs it few READDIRPLUS. Any other notice joining it (a lookup's OP_LOOKED: a program that
 * lists and then opens) puts it back on bdelay, as does a READ parked for a map.
 * Batches other threads open are posted at once.
 */
static int tsfn_post(session_t *s, msg_t *m) {
  return napi_call_threadsafe_function(s->tsfn, m, napi_tsfn_nonblocking) == napi_ok;
}
static __thread int on_loop;
/* Loop thread: the request it is processing went elsewhere (to JS, the read threads, or held):
 * its answer, and so the requester's next request, is further away than a spin (see loop). */
static __thread int handed;
/* With bmu held: posts the batch the loop thread holds, if any. */
static void bflush(session_t *s) {
  if (!s->bheld) return;
  msg_t *m = s->bheld;
  s->bheld = NULL;
  if (!tsfn_post(s, m)) { if (s->bopen == m) s->bopen = NULL; nbatch_t *b = (nbatch_t *)m->data; free(b->r); free(m); }
}

/* With bmu held: the open batch, or a new one posted; NULL when none can be. */
static nbatch_t *bopen(session_t *s, size_t more) {
  if (!s->bopen) {
    msg_t *m = calloc(1, sizeof(msg_t) + sizeof(nbatch_t));
    if (!m) return NULL;
    m->op = OP_BATCH;
    /* Posted empty: `posted` counts its notices as they join. */
    if (s->bdelay && on_loop) { s->bheld = m; s->bheld_t = now_ns(CLOCK_MONOTONIC); s->blisted = 1; }
    else if (!tsfn_post(s, m)) { free(m); return NULL; }
    atomic_fetch_add(&s->counts[OP_BATCH], 1);
    s->bopen = m;
  }
  nbatch_t *b = (nbatch_t *)s->bopen->data;
  if (b->n + more > b->cap) {
    size_t cap = b->cap ? b->cap : 32;
    while (cap < b->n + more) cap *= 2;
    double *r = realloc(b->r, cap * 4 * sizeof(double));
    if (!r) return NULL;
    b->r = r;
    b->cap = cap;
  }
  return b;
}

static void bput(nbatch_t *b, int op, uint64_t ino, uint64_t a, int64_t bb) {
  double *r = b->r + 4 * b->n++;
  r[0] = op; r[1] = (double)ino; r[2] = (double)a; r[3] = (double)bb;
}

/* A notice (any thread): joins the open batch. Dropped when no batch can be posted (the session
 * is closing, or no memory), as a failed post always dropped it. */
static void notice(session_t *s, int op, uint64_t ino, uint64_t a, int64_t b) {
  atomic_fetch_add(&s->counts[op], 1);
  pthread_mutex_lock(&s->bmu);
  nbatch_t *nb = bopen(s, 1);
  if (nb) { bput(nb, op, ino, a, b); atomic_fetch_add(&s->posted, 1); }
  if (op != OP_LISTED) s->blisted = 0;
  pthread_mutex_unlock(&s->bmu);
}

static void post(session_t *s, msg_t *m) {
  if (!m->req && m->op != OP_END) {
    /* A notice made as a message: its record(s) join the batch (a kernel's batch of FORGETs, one
     * record each, counted once as before). */
    atomic_fetch_add(&s->counts[m->op], 1);
    pthread_mutex_lock(&s->bmu);
    if (m->op == OP_FORGET && m->ino == 0) {
      struct fuse_forget_data *f = (struct fuse_forget_data *)m->data;
      nbatch_t *nb = bopen(s, m->a);
      for (uint64_t k = 0; nb && k < m->a; k++) { bput(nb, OP_FORGET, f[k].ino, f[k].nlookup, 0); atomic_fetch_add(&s->posted, 1); }
    } else {
      nbatch_t *nb = bopen(s, 1);
      if (nb) { bput(nb, m->op, m->ino, m->a, m->b); atomic_fetch_add(&s->posted, 1); }
    }
    if (m->op != OP_LISTED) s->blisted = 0;
    pthread_mutex_unlock(&s->bmu);
    free(m);
    return;
  }
  atomic_fetch_add(&s->counts[m->op], 1);
  pthread_mutex_lock(&s->bmu);
  bflush(s);
  s->bopen = NULL;
  if (m->req) {
    atomic_fetch_add(&s->queued, 1);
    m->t0 = now_ns(CLOCK_MONOTONIC);
    m->cbn0 = atomic_load(&s->cbn);
    m->cbr0 = atomic_load(&s->cbr);
    if (s->qdebug) { m->cpu0 = now_ns(s->jsclock); m->rq0 = js_runq(s); }
    m->tn0 = atomic_load(&s->takenn);
    m->tr0 = atomic_load(&s->takenr);
    uint64_t posted = atomic_load(&s->posted);
    m->ahead = posted > m->tn0 + m->tr0 ? posted - m->tn0 - m->tr0 : 0;
  }
  atomic_fetch_add(&s->posted, 1);
  int ok = tsfn_post(s, m);
  if (!ok) atomic_fetch_sub(&s->posted, 1);
  pthread_mutex_unlock(&s->bmu);
  if (!ok) {
    if (m->req) {
      atomic_fetch_sub(&s->queued, 1);
      fuse_reply_err(m->req, EIO);
    }
    free(m);
  }
}

static msg_t *mk(int op, fuse_req_t req, uint64_t ino, uint64_t a, int64_t b, const char *name, size_t len) {
  msg_t *m = malloc(sizeof(msg_t) + len + 1);
  if (!m) return NULL;
  m->op = op; m->req = req; m->ino = ino; m->a = a; m->b = b; m->len = len;
  /* Names point into libfuse's receive buffer, which the next request overwrites. */
  if (len) memcpy(m->data, name, len);
  m->data[len] = 0;
  return m;
}

static void send_req(fuse_req_t req, int op, uint64_t ino, uint64_t a, int64_t b, const char *name) {
  session_t *s = fuse_req_userdata(req);
  msg_t *m = mk(op, req, ino, a, b, name, name ? strlen(name) : 0);
  if (!m) { fuse_reply_err(req, ENOMEM); return; }
  handed = 1;
  post(s, m);
}

static ready_t **rfind(session_t *s, uint64_t ino) {
  ready_t **p = &s->rb[ino % RBUCKETS];
  while (*p && (*p)->ino != ino) p = &(*p)->hnext;
  return p;
}

/* With rmu held: unlinks and frees the entry *pp points at. */
static void rdrop(session_t *s, ready_t **pp) {
  ready_t *r = *pp;
  *pp = r->hnext;
  if (r->prev) r->prev->next = r->next; else s->rhead = r->next;
  if (r->next) r->next->prev = r->prev; else s->rtail = r->prev;
  s->rbytes -= r->len;
  free(r);
}

static void rforget(session_t *s, uint64_t ino) {
  pthread_mutex_lock(&s->rmu);
  ready_t **pp = rfind(s, ino);
  if (*pp) rdrop(s, pp);
  pthread_mutex_unlock(&s->rmu);
}

/* Answers a READ from an offered file; false when the node has none. */
static int rserve(session_t *s, fuse_req_t req, uint64_t ino, size_t size, off_t off) {
  pthread_mutex_lock(&s->rmu);
  ready_t **pp = rfind(s, ino);
  if (!*pp) { pthread_mutex_unlock(&s->rmu); return 0; }
  ready_t *r = *pp;
  size_t at = off < 0 ? 0 : (size_t)off;
  size_t n = at >= r->len ? 0 : (r->len - at < size ? r->len - at : size);
  fuse_reply_buf(req, r->data + at, n);
  r->served += n;
  if (r->served >= r->len || n == 0) rdrop(s, pp);
  pthread_mutex_unlock(&s->rmu);
  atomic_fetch_add(&s->rserved, 1);
  return 1;
}

static int rhas(session_t *s, uint64_t ino) {
  pthread_mutex_lock(&s->rmu);
  int r = *rfind(s, ino) != NULL;
  pthread_mutex_unlock(&s->rmu);
  return r;
}

/* ---- Chunk maps (loop thread, read threads, JS thread) ----
 * A READ reached JavaScript whenever its bytes were neither offered nor in a stream: a small file's
 * READ before its bytes were offered (~25 of a python cold start through usr, 2-80 ms each there,
 * most of it the JS thread's other work: fuse-needs §34, §35), and a large file's READs paid the
 * stream's hops (loop thread -> table, JS per ~4 MiB, piscina tasks; ~0.3 s of serving CPU for
 * the bench's 117 MB file, a fifth of it node's). Once JS knows where a file's chunks lie, it hands
 * the binding their map (cmap: per chunk its offset in the file, pack, offset, sizes, codec, id):
 * a small file's one chunk (map(): when its location comes in, MIQ_MOUNT_MAPS=1), a file of
 * several chunks (mapFile(): at its first READ once all its chunks are located, or at the mount's
 * start for the libraries whose locations it loads then). A READ that neither the offered files
 * nor a stream answer, of a node with a map, is then answered by the two read threads here: the
 * chunks it covers (binary search over their file offsets), each pread (a raw one straight into
 * the reply), zstd (a plain chunk straight into the reply, or the shared frame a chunk lies in),
 * BLAKE3 of the chunk's bytes against its id, and only when every one matched, the reply. Bytes
 * that do not match are never served: EIO and a log line, and the map is marked failed (its READs
 * go to JS from then on: JS's own check answers EIO, and JS does not hand that map again). A pack
 * that cannot be read hands the READ to JS (which asks the store again: gc may have moved the
 * chunk). Raw, zstd and framed chunks only: delta chunks (their dictionary is other chunks) are
 * never mapped. Never the loop thread: it only queues the READ (its preads would hold up every
 * other request). Maps leave with FORGET, and beyond CMAPS maps or CCHUNKS chunks (oldest first).
 * Node ids are content ids: a switch of usr never makes a node's map wrong. */
static cmap_t **cfind(session_t *s, uint64_t ino) {
  cmap_t **p = &s->cb[ino % CBUCKETS];
  while (*p && (*p)->ino != ino) p = &(*p)->hnext;
  return p;
}

/* With cmu held. */
static void cunlink(session_t *s, cmap_t **pp) {
  cmap_t *c = *pp;
  *pp = c->hnext;
  if (c->prev) c->prev->next = c->next; else s->chead = c->next;
  if (c->next) c->next->prev = c->prev; else s->ctail = c->prev;
  s->ncmaps--;
  s->nmchunks -= c->n;
  free(c);
}

static void cforget(session_t *s, uint64_t ino) {
  if (!s->nworkers) return;
  pthread_mutex_lock(&s->cmu);
  cmap_t **pp = cfind(s, ino);
  if (*pp) cunlink(s, pp);
  pthread_mutex_unlock(&s->cmu);
}

/* Whether node `ino` has a map the read threads can answer from: 1 yes, 0 none, -1 one that
 * failed (a chunk's check, its pack): its READs are JS's. */
static int chas(session_t *s, uint64_t ino) {
  pthread_mutex_lock(&s->cmu);
  cmap_t *c = *cfind(s, ino);
  int has = c ? (c->broken ? -1 : 1) : 0;
  pthread_mutex_unlock(&s->cmu);
  return has;
}

/* Queues a READ for the read threads (any thread); false when they are stopping. */
static int cqueue(session_t *s, fuse_req_t req, uint64_t ino, size_t size, uint64_t off) {
  cjob_t *j = malloc(sizeof *j);
  if (!j) return 0;
  j->req = req; j->ino = ino; j->off = off; j->size = size; j->next = NULL;
  pthread_mutex_lock(&s->jmu);
  if (s->jstop || s->dropping) { pthread_mutex_unlock(&s->jmu); free(j); return 0; }
  atomic_fetch_add(&s->cjobs, 1);
  handed = 1;
  if (s->jtail) s->jtail->next = j; else s->jhead = j;
  s->jtail = j;
  pthread_cond_signal(&s->jcv);
  pthread_mutex_unlock(&s->jmu);
  return 1;
}

/* Loop thread: queues a READ of a mapped node for the read threads; false when it has no map. */
static int cserve(session_t *s, fuse_req_t req, uint64_t ino, size_t size, off_t off) {
  if (!s->nworkers || off < 0 || chas(s, ino) != 1) return 0;
  return cqueue(s, req, ino, size, (uint64_t)off);
}

/* ---- Pending maps (loop thread, read threads, JS thread; cmu) ----
 * A small file's first READ came right after its LOOKUP, which the loop thread answered from a
 * registered listing before JS had heard of it (OP_LOOKED) and looked up where its one chunk
 * lies: it went to JS (8-9 of the ~21 READs that reached JS in a python cold start, fuse-needs
 * §37), where it waited for that same lookup and then for a decode on the JS thread. With
 * pendMaps on, such a LOOKUP marks the node pending (JS marks the ones it answers itself, pend),
 * and a READ of a pending node that nothing here answers is held, not sent: JS's map of the node
 * (map) hands it to the read threads, offered bytes (offer, a decode thread's readyOffer) answer
 * it from the table, and JS's unpend (no map: a delta, a chunk not located) sends it to JS. A
 * READ is held at most `pendns` after the LOOKUP: then it goes to JS (a read thread sweeps every
 * PTICK ms while any is held), so a map that never comes costs a bounded wait, never a hang. */
#define PTICK_NS 2000000ull
static cpend_t **pfind(session_t *s, uint64_t ino) {
  cpend_t **p = &s->pb[ino % PBUCKETS];
  while (*p && (*p)->ino != ino) p = &(*p)->hnext;
  return p;
}

/* With cmu held: unlinks *pp and returns its held READs. */
static park_t *punlink(session_t *s, cpend_t **pp) {
  cpend_t *c = *pp;
  park_t *k = c->parked;
  *pp = c->hnext;
  s->npend--;
  free(c);
  return k;
}

/* Held READs of node `ino` on their way (no lock held): how 1 to the read threads (its map
 * came), 2 answered from its offered bytes, 0 to JS (and whenever the first two cannot be). */
static void presume(session_t *s, uint64_t ino, park_t *k, int how) {
  while (k) {
    park_t *n = k->next;
    int done = how == 1 ? cqueue(s, k->req, ino, k->size, k->off) : how == 2 ? rserve(s, k->req, ino, k->size, (off_t)k->off) : 0;
    if (done) atomic_fetch_add(how == 1 ? &s->cparkmap : &s->cparkoffer, 1);
    else {
      atomic_fetch_add(&s->cparkjs, 1);
      if (s->dropping) fuse_reply_err(k->req, EIO);
      else send_req(k->req, OP_READ, ino, k->size, (int64_t)k->off, NULL);
    }
    free(k);
    atomic_fetch_sub(&s->cparkn, 1);
    k = n;
  }
}

/* Node `ino` is pending no more: its held READs go `how` (see presume). */
static void cunpend(session_t *s, uint64_t ino, int how) {
  if (!s->pb) return;
  pthread_mutex_lock(&s->cmu);
  cpend_t **pp = s->pb ? pfind(s, ino) : NULL;
  park_t *k = pp && *pp ? punlink(s, pp) : NULL;
  pthread_mutex_unlock(&s->cmu);
  presume(s, ino, k, how);
}

/* Marks node `ino` pending (loop thread at a LOOKUP it answered, or JS): nothing when pending
 * maps are off, the read threads are not running, or the node has a map already. */
static void cpend(session_t *s, uint64_t ino) {
  if (!s->pendmax || !s->nworkers || ino == 0) return;
  uint64_t now = now_ns(CLOCK_MONOTONIC);
  pthread_mutex_lock(&s->cmu);
  if (s->pb && !*cfind(s, ino)) {
    cpend_t **pp = pfind(s, ino);
    if (*pp) (*pp)->until = now + s->pendns;
    else {
      /* Full: the ones past their time that hold nothing leave (a node looked up and never read). */
      for (size_t b = 0; s->npend >= PENDS && b < PBUCKETS; b++)
        for (cpend_t **q = &s->pb[b]; *q;) if ((*q)->until < now && !(*q)->parked) punlink(s, q); else q = &(*q)->hnext;
      cpend_t *c = s->npend < PENDS ? malloc(sizeof *c) : NULL;
      if (c) {
        c->ino = ino; c->until = now + s->pendns; c->parked = NULL;
        c->hnext = s->pb[ino % PBUCKETS];
        s->pb[ino % PBUCKETS] = c;
        s->npend++;
        atomic_fetch_add(&s->cpended, 1);
      }
    }
  }
  pthread_mutex_unlock(&s->cmu);
}

/* Loop thread: holds a READ of a pending node (see above); false when the node is not pending
 * (or past its time: JS answers). A map that came meanwhile takes it at once. */
static int cpark(session_t *s, fuse_req_t req, uint64_t ino, size_t size, off_t off) {
  if (!s->pb || off < 0) return 0;
  park_t *k = malloc(sizeof *k);
  if (!k) return 0;
  k->req = req; k->off = (uint64_t)off; k->size = size; k->next = NULL;
  int held = 0, mapped = 0;
  uint64_t now = now_ns(CLOCK_MONOTONIC);
  pthread_mutex_lock(&s->cmu);
  cpend_t **pp = s->pb ? pfind(s, ino) : NULL;
  if (pp && *pp && (*pp)->until >= now) {
    cmap_t *c = *cfind(s, ino);
    if (c && !c->broken) mapped = 1;
    else if (!c) {
      park_t **t = &(*pp)->parked;
      while (*t) t = &(*t)->next;
      *t = k;
      held = handed = 1;
      atomic_fetch_add(&s->cparkn, 1);
      atomic_fetch_add(&s->cparked, 1);
    }
  }
  pthread_mutex_unlock(&s->cmu);
  if (held) {
    /* A read thread asleep without a timeout sweeps from now on. */
    pthread_mutex_lock(&s->jmu);
    pthread_cond_signal(&s->jcv);
    pthread_mutex_unlock(&s->jmu);
    return 1;
  }
  free(k);
  return mapped && cqueue(s, req, ino, size, (uint64_t)off);
}

/* A read thread, while READs are held: the pending nodes past their time send theirs to JS. */
static void csweep(session_t *s) {
  uint64_t now = now_ns(CLOCK_MONOTONIC);
  for (;;) {
    park_t *k = NULL;
    uint64_t ino = 0;
    pthread_mutex_lock(&s->cmu);
    for (size_t b = 0; s->pb && !k && b < PBUCKETS; b++)
      for (cpend_t **q = &s->pb[b]; *q; q = &(*q)->hnext)
        if ((*q)->parked && (*q)->until < now) { ino = (*q)->ino; k = punlink(s, q); break; }
    pthread_mutex_unlock(&s->cmu);
    if (!k) return;
    presume(s, ino, k, 0);
  }
}

/* ---- Streams (loop thread, decode threads, JS thread) ----
 * A large file read in order (fs/reader.ts, the stream cache) has its chunks decoded ahead of the
 * reader on the decode threads. Each thread, once a chunk's bytes matched its id, copies them
 * here (chunkOffer); a READ they cover is answered on the loop thread, and a READ of chunks still
 * being decoded (JS promised them before sending the task) waits here and is answered by the
 * thread that offers the last of them: no hop through JS on a READ's way (measured before: loop
 * thread -> JS -> decode thread -> JS -> reply, ~5 wake-ups a MiB). A chunk that fails its hash is
 * never offered; JS settles its promise, and the READs waiting on it go to JS, which answers
 * EIO. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
#define GSESS 64
static session_t *g_sess[GSESS];
/* Handles are index + GSESS * a count of sessions made: a task of a session gone cannot offer to
 * a later session in the same index. */
static int g_made;

static stream_t **sfind(session_t *s, uint64_t ino) {
  stream_t **p = &s->sb[ino % SBUCKETS];
  while (*p && (*p)->ino != ino) p = &(*p)->hnext;
  return p;
}

/* With smu held: a block of at least len bytes, reused when one is free. */
static char *sblock(session_t *s, size_t len, size_t *cap) {
  int best = -1;
  for (int k = 0; k < s->nsfree; k++)
    if (s->sfreecap[k] >= len && s->sfreecap[k] <= 2 * len + (64u << 10) && (best < 0 || s->sfreecap[k] < s->sfreecap[best])) best = k;
  if (best >= 0) {
    char *b = s->sfree[best];
    *cap = s->sfreecap[best];
    s->nsfree--;
    s->sfree[best] = s->sfree[s->nsfree];
    s->sfreecap[best] = s->sfreecap[s->nsfree];
    return b;
  }
  *cap = (len + 0xffff) & ~(size_t)0xffff;
  return malloc(*cap ? *cap : 1);
}

static void sunblock(session_t *s, char *b, size_t cap) {
  if (s->nsfree < SFREE) { s->sfree[s->nsfree] = b; s->sfreecap[s->nsfree++] = cap; }
  else free(b);
}

/* With smu held: unlinks segment g and keeps its block for reuse. */
static void sunseg(session_t *s, seg_t *g) {
  seg_t **pp = &g->st->segs;
  while (*pp && *pp != g) pp = &(*pp)->next;
  if (*pp) *pp = g->next;
  if (g->aprev) g->aprev->anext = g->anext; else s->shead = g->anext;
  if (g->anext) g->anext->aprev = g->aprev; else s->stail = g->aprev;
  s->sbytes -= g->len;
  sunblock(s, g->data, g->cap);
  free(g);
}

/* Whether [from, to) lies inside the stream's promises (they are few: a readahead's tasks). */
static int spromised(stream_t *st, uint64_t from, uint64_t to) {
  while (from < to) {
    prom_t *hit = NULL;
    for (prom_t *p = st->proms; p; p = p->next) if (p->off <= from && p->end > from) { hit = p; break; }
    if (!hit) return 0;
    from = hit->end;
  }
  return 1;
}

#define SIOV 256
/* With smu held: answers [off, off + size) from the stream's segments; 1 when answered. Else
 * *waitable says whether every missing byte is promised. */
static int stry(session_t *s, stream_t *st, fuse_req_t req, uint64_t off, size_t size, int *waitable) {
  uint64_t end = off + size < st->size ? off + size : st->size;
  *waitable = 1;
  if (off >= end) { fuse_reply_buf(req, NULL, 0); return 1; }
  struct iovec iov[SIOV];
  seg_t *used[SIOV];
  int n = 0, ok = 1;
  uint64_t pos = off;
  for (seg_t *g = st->segs; g && pos < end; g = g->next) {
    if (g->off + g->len <= pos) continue;
    if (g->off > pos) {
      uint64_t to = g->off < end ? g->off : end;
      ok = 0;
      if (!spromised(st, pos, to)) { *waitable = 0; return 0; }
      pos = to;
      if (pos >= end) break;
    }
    uint64_t to = g->off + g->len < end ? g->off + g->len : end;
    if (n == SIOV) { *waitable = 0; return 0; }
    iov[n].iov_base = g->data + (pos - g->off);
    iov[n].iov_len = to - pos;
    used[n++] = g;
    pos = to;
  }
  if (pos < end) {
    ok = 0;
    if (!spromised(st, pos, end)) *waitable = 0;
  }
  if (!ok) return 0;
  fuse_reply_iov(req, iov, n);
  /* Each byte is asked for once (the kernel keeps what it got): a segment leaves once read. */
  for (int k = 0; k < n; k++) {
    used[k]->served += iov[k].iov_len;
    if (used[k]->served >= used[k]->len) sunseg(s, used[k]);
  }
  atomic_fetch_add(&s->sserved, 1);
  return 1;
}

typedef struct sout { msg_t *m[64]; int n; } sout_t;
static int sinsert(session_t *s, uint64_t ino, uint64_t off, const void *data, size_t len, sout_t *o);
static int sadopt(session_t *s, uint64_t ino, uint64_t off, char *b, size_t cap, size_t len, sout_t *o);

/* Collects a message to post once smu is released. */
static void sout_add(session_t *s, sout_t *o, msg_t *m) {
  if (!m) return;
  if (o->n == 64) { post(s, m); return; }
  o->m[o->n++] = m;
}

static void sout_post(session_t *s, sout_t *o) {
  for (int k = 0; k < o->n; k++) post(s, o->m[k]);
  o->n = 0;
}

/* With smu held: whether JS is to hear of a READ [off, off + size) answered from the stream
 * (OP_STREAMED, which moves its readahead on): only when fewer than st->low bytes past the READ
 * are offered or promised (the readahead runs short), not for every READ. Each message is a wake
 * of the JS thread; JS's readahead was moved on per READ of 1 MiB, 1-2 MiB at a time. */
static int sshort(stream_t *st, uint64_t off, size_t size) {
  uint64_t end = off + size, pos = end;
  if (st->low == 0) return 1;
  if (end >= st->size) return 0;
  while (pos < st->size && pos - end < st->low) {
    uint64_t to = pos;
    for (seg_t *g = st->segs; g && g->off <= pos; g = g->next) if (g->off + g->len > to) to = g->off + g->len;
    for (prom_t *p = st->proms; p; p = p->next) if (p->off <= pos && p->end > to) to = p->end;
    if (to == pos) break;
    pos = to;
  }
  return pos < st->size && pos - end < st->low;
}

/* With smu held: answers the waiting READs that can be now, and sends to JS those that can no
 * longer be (a promise settled without its chunk: a hash failure, an error, an eviction). */
static void srevisit(session_t *s, stream_t *st, sout_t *o) {
  park_t **pp = &st->parked;
  while (*pp) {
    park_t *p = *pp;
    int waitable;
    if (stry(s, st, p->req, p->off, p->size, &waitable)) {
      if (sshort(st, p->off, p->size)) sout_add(s, o, mk(OP_STREAMED, NULL, st->ino, p->size, (int64_t)p->off, NULL, 0));
    } else if (!waitable) {
      atomic_fetch_add(&s->sreposted, 1);
      sout_add(s, o, mk(OP_READ, p->req, st->ino, p->size, (int64_t)p->off, NULL, 0));
    } else {
      pp = &p->next;
      continue;
    }
    *pp = p->next;
    atomic_fetch_sub(&s->nparked, 1);
    free(p);
  }
}

/* With smu held: drops a stream; its waiting READs (none while the kernel holds the node) go to
 * JS, or with `fail` are answered EIO. */
static void sdrop(session_t *s, stream_t **pp, sout_t *o, int fail) {
  stream_t *st = *pp;
  *pp = st->hnext;
  while (st->segs) sunseg(s, st->segs);
  while (st->proms) { prom_t *p = st->proms; st->proms = p->next; free(p); }
  while (st->parked) {
    park_t *p = st->parked;
    st->parked = p->next;
    atomic_fetch_sub(&s->nparked, 1);
    if (fail || !o) fuse_reply_err(p->req, EIO);
    else sout_add(s, o, mk(OP_READ, p->req, st->ino, p->size, (int64_t)p->off, NULL, 0));
    free(p);
  }
  free(st);
}

static void sforget(session_t *s, uint64_t ino) {
  sout_t o = { .n = 0 };
  pthread_mutex_lock(&s->smu);
  stream_t **pp = sfind(s, ino);
  if (*pp) sdrop(s, pp, &o, 0);
  pthread_mutex_unlock(&s->smu);
  sout_post(s, &o);
}

/* With smu held: parks a READ on a stream until its promised bytes are offered; false when
 * there is no memory for it (the caller answers it another way). */
static int spark(session_t *s, stream_t *st, fuse_req_t req, uint64_t off, size_t size) {
  park_t *p = malloc(sizeof *p);
  if (!p) return 0;
  p->req = req; p->off = off; p->size = size;
  p->next = st->parked;
  st->parked = p;
  atomic_fetch_add(&s->nparked, 1);
  atomic_fetch_add(&s->sparked, 1);
  return 1;
}

/* Loop thread: answers (or holds) a READ of a stream; false when JS is to answer it. */
static int sserve(session_t *s, fuse_req_t req, uint64_t ino, size_t size, off_t off) {
  if (off < 0) return 0;
  pthread_mutex_lock(&s->smu);
  stream_t *st = *sfind(s, ino);
  if (!st) { pthread_mutex_unlock(&s->smu); return 0; }
  int waitable, done = stry(s, st, req, (uint64_t)off, size, &waitable);
  if (!done && waitable && spark(s, st, req, (uint64_t)off, size)) done = 2;
  if (done == 1 && !sshort(st, (uint64_t)off, size)) done = 3;
  pthread_mutex_unlock(&s->smu);
  if (done == 1) notice(s, OP_STREAMED, ino, size, off);
  return done != 0;
}

/* How long the pusher retries a node the kernel does not have yet without sleeping. */
#define PUSH_SPIN_US 200
/* Marks a queued push whose node was just handed to the kernel by a LOOKUP's answer (the looking
 * process is about to make it): only those are retried without sleeping. */
#define QFRESH (1ULL << 63)

/* Queues a push of node `ino`'s offered bytes (any thread). */
static void qpush(session_t *s, uint64_t ino) {
  if (s->qoff || !s->qstarted) return;
  pthread_mutex_lock(&s->qmu);
  if (s->qlen == s->qcap) {
    size_t nc = s->qcap ? s->qcap * 2 : 1024;
    uint64_t *nq = malloc(nc * sizeof *nq);
    if (!nq) { pthread_mutex_unlock(&s->qmu); return; }
    for (size_t k = 0; k < s->qlen; k++) nq[k] = s->q[(s->qhead + k) % s->qcap];
    free(s->q);
    s->q = nq; s->qcap = nc; s->qhead = 0;
  }
  s->q[(s->qhead + s->qlen++) % s->qcap] = ino;
  pthread_cond_signal(&s->qcv);
  pthread_mutex_unlock(&s->qmu);
}

/* The pusher follows the loop thread's CPU. Right after the loop thread answers a LOOKUP, the
 * looking process is woken on its own (other) CPU and makes the node only when it runs; the
 * pusher, woken by the same answer, landed on that CPU too (both idle-placed there) and ran
 * first: its notify_store found no node (ENOENT), it slept, and the process went on to its READ
 * before the retry (a cold read of every file on a 2-vCPU guest: ~7 of 10 pushes lost so, each
 * costing the file a READ round trip). Pinned to the loop thread's CPU, which the loop thread
 * leaves as it waits for the next request, the pusher retries while the process makes the node
 * on its own CPU, and the bytes are in the page cache before its read(). (fuse-needs §48) */
static void pin_cpu(session_t *s, int *pinned) {
  int want = atomic_load(&s->qcpu);
  if (want < 0 || want == *pinned || want >= CPU_SETSIZE) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(want, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) { atomic_store(&s->qcpu, -1); return; }
  *pinned = want;
  atomic_fetch_add(&s->pushpins, 1);
}

static void *pusher(void *arg) {
  session_t *s = arg;
  int pinned = -1;
  pthread_setname_np(pthread_self(), "miq-push");
  for (;;) {
    pthread_mutex_lock(&s->qmu);
    while (!s->qlen && !s->qstop) pthread_cond_wait(&s->qcv, &s->qmu);
    if (s->qstop) { pthread_mutex_unlock(&s->qmu); break; }
    uint64_t ino = s->q[s->qhead] & ~QFRESH;
    int fresh = (s->q[s->qhead] & QFRESH) != 0;
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
    pthread_mutex_unlock(&s->qmu);
    /* A copy, so the table's lock is not held while the kernel may wait on a page lock. */
    char *copy = NULL;
    size_t len = 0;
    pthread_mutex_lock(&s->rmu);
    ready_t *r = *rfind(s, ino);
    if (r && r->len > 0 && (copy = malloc(r->len))) { memcpy(copy, r->data, r->len); len = r->len; }
    pthread_mutex_unlock(&s->rmu);
    if (!copy) continue;
    pin_cpu(s, &pinned);
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);
    bv.buf[0].mem = copy;
    int rc = fuse_lowlevel_notify_store(s->se, ino, 0, &bv, 0);
    /* Right after its LOOKUP is answered, the node is often not in the kernel yet (the looking
     * process makes it when it wakes up, ~20-40 us later on a guest whose idle vCPUs halt): try
     * again at once for up to PUSH_SPIN_US (yielding, so a process waiting for this CPU runs),
     * then a few times more slowly, while no READ took it. */
    for (uint64_t t0 = rc == -ENOENT ? now_ns(CLOCK_MONOTONIC) : 0; rc == -ENOENT && fresh && !s->qstop && rhas(s, ino) && now_ns(CLOCK_MONOTONIC) - t0 < PUSH_SPIN_US * 1000ull;) {
      sched_yield();
      rc = fuse_lowlevel_notify_store(s->se, ino, 0, &bv, 0);
    }
    for (int k = 0; rc == -ENOENT && k < 8 && !s->qstop && rhas(s, ino); k++) {
      usleep(25);
      if ((rc = fuse_lowlevel_notify_store(s->se, ino, 0, &bv, 0)) == 0) atomic_fetch_add(&s->pushlate, 1);
    }
    free(copy);
    if (rc == 0) {
      atomic_fetch_add(&s->pushed, 1);
      rforget(s, ino);
    } else {
      /* The kernel does not know the node (yet): its READ is answered from the table. */
      atomic_fetch_add(&s->pushfail, 1);
    }
  }
  return NULL;
}

static void u_prepare(session_t *s, struct fuse_conn_info *c);
static void u_stop(session_t *s);

static void ll_init(void *ud, struct fuse_conn_info *c) {
  session_t *s = ud;
  /* Everything served is immutable per node id: let the kernel keep it. */
  c->want &= ~(FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_EXPLICIT_INVAL_DATA | FUSE_CAP_READDIRPLUS_AUTO |
               FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_WRITEBACK_CACHE);
  unsigned add = FUSE_CAP_NO_OPEN_SUPPORT | FUSE_CAP_NO_OPENDIR_SUPPORT | FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_READDIRPLUS |
                 FUSE_CAP_ASYNC_READ | FUSE_CAP_PARALLEL_DIROPS;
  c->want |= add & c->capable;
  /* libfuse derives max_pages (the largest READ) from max_write: 1 MiB reads. */
  c->max_write = 1 << 20;
  c->max_readahead = c->max_readahead < (1u << 20) ? c->max_readahead : (1u << 20);
  /* max_read stays as mounted: libfuse 3.14 refuses INIT when it differs from -o max_read. */
  s->max_write = c->max_write; s->max_readahead = c->max_readahead; s->want = c->want;
  u_prepare(s, c);
}

static uint32_t nhash(uint64_t parent, const char *name, size_t len) {
  uint64_t h = 1469598103934665603ull ^ (parent * 0x9e3779b97f4a7c15ull);
  for (size_t k = 0; k < len; k++) h = (h ^ (unsigned char)name[k]) * 1099511628211ull;
  return (uint32_t)(h ^ (h >> 32)) & (NBUCKETS - 1);
}

static named_t **nfind(session_t *s, uint64_t parent, const char *name, size_t len) {
  named_t **p = &s->nb[nhash(parent, name, len)];
  while (*p && !((*p)->parent == parent && (*p)->len == len && memcmp((*p)->name, name, len) == 0)) p = &(*p)->hnext;
  return p;
}

static dirl_t **dfind(session_t *s, uint64_t ino) {
  dirl_t **p = &s->db[ino & (DBUCKETS - 1)];
  while (*p && (*p)->ino != ino) p = &(*p)->hnext;
  return p;
}

/* Entry k of a registered listing: f64 ino, f64 size, u32 mode (as replyDir reads them). */
static void dentry(const dirl_t *d, uint32_t k, struct fuse_entry_param *e) {
  double ino, size;
  uint32_t mode;
  const uint8_t *p = d->packed + d->offs[k];
  memcpy(&ino, p, 8);
  memcpy(&size, p + 8, 8);
  memcpy(&mode, p + 16, 4);
  fill_entry(e, ino, mode, size, d->timeout, d->timeout);
}

/* ---- File nodes (namesTree; fuse-needs §41) ----
 * A cold walk registers ~69k file entries of ~5k listings; as JS objects (an Entry, a hex id
 * string and a Map slot each) they were a third of the JS thread's walk and half its garbage
 * collection (§40). Here a file node is a small record in two hash tables (by content id and by
 * node id), all under nmu. Its kernel lookup count is kept here: a LOOKUP or READDIRPLUS answered
 * from a registered listing counts it, a FORGET of it never goes to JS, and it is freed when the
 * kernel has forgotten it and no registered listing holds it (kept). Node ids are never reused
 * (a freed content gets a new number when it is listed again). */
static size_t fidx(const fnode_t *f, size_t cap) { uint64_t h; memcpy(&h, f->id, 8); return (size_t)((h ^ f->exe) & (cap - 1)); }
static size_t fidk(const uint8_t *id, int exe, size_t cap) { uint64_t h; memcpy(&h, id, 8); return (size_t)((h ^ (uint64_t)exe) & (cap - 1)); }

static int fgrow(session_t *s) {
  size_t cap = s->fcap ? s->fcap * 2 : 1u << 14;
  fnode_t **a = calloc(cap, sizeof *a), **b = calloc(cap, sizeof *b);
  if (!a || !b) { free(a); free(b); return 0; }
  for (size_t k = 0; k < s->fcap; k++) {
    for (fnode_t *f = s->fid[k], *n; f; f = n) { n = f->idnext; size_t h = fidx(f, cap); f->idnext = a[h]; a[h] = f; }
    for (fnode_t *f = s->fino[k], *n; f; f = n) { n = f->inonext; size_t h = (size_t)(f->ino & (cap - 1)); f->inonext = b[h]; b[h] = f; }
  }
  free(s->fid); free(s->fino);
  s->fid = a; s->fino = b; s->fcap = cap;
  return 1;
}

static fnode_t *fbyid(session_t *s, const uint8_t *id, int exe) {
  if (!s->fcap) return NULL;
  fnode_t *f = s->fid[fidk(id, exe, s->fcap)];
  while (f && !(f->exe == exe && memcmp(f->id, id, 32) == 0)) f = f->idnext;
  return f;
}

static fnode_t *fbyino(session_t *s, uint64_t ino) {
  if (!s->fcap || ino < FBASE) return NULL;
  fnode_t *f = s->fino[ino & (s->fcap - 1)];
  while (f && f->ino != ino) f = f->inonext;
  return f;
}

/* The node of (id, exe), made if new (NULL when out of memory). */
static fnode_t *fget(session_t *s, const uint8_t *id, int exe, double size, uint64_t parent, uint32_t index) {
  fnode_t *f = fbyid(s, id, exe);
  if (f) return f;
  if (s->fcount >= s->fcap && !fgrow(s)) return NULL;
  f = calloc(1, sizeof *f);
  if (!f) return NULL;
  memcpy(f->id, id, 32);
  f->exe = (uint8_t)exe; f->size = size; f->parent = parent; f->index = index;
  f->ino = FBASE + s->fnext++;
  size_t h = fidx(f, s->fcap);
  f->idnext = s->fid[h]; s->fid[h] = f;
  h = (size_t)(f->ino & (s->fcap - 1));
  f->inonext = s->fino[h]; s->fino[h] = f;
  s->fcount++;
  atomic_fetch_add(&s->fmade, 1);
  return f;
}

/* With nmu held: frees a node nobody holds (the kernel forgot it, no listing keeps it). */
static void fmaybe_free(session_t *s, fnode_t *f) {
  if (f->nlookup || f->kept) return;
  fnode_t **p = &s->fid[fidx(f, s->fcap)];
  while (*p && *p != f) p = &(*p)->idnext;
  if (*p) *p = f->idnext;
  p = &s->fino[f->ino & (s->fcap - 1)];
  while (*p && *p != f) p = &(*p)->inonext;
  if (*p) *p = f->inonext;
  s->fcount--;
  atomic_fetch_add(&s->ffreed, 1);
  if (f->js && !s->destroyed) notice(s, OP_FREED, f->ino, 0, 0);
  free(f);
}

/* A FORGET (or an undone count) of node `ino`: true when it is one of ours (applied here). */
static int fforget(session_t *s, uint64_t ino, uint64_t n) {
  if (ino < FBASE) return 0;
  pthread_mutex_lock(&s->nmu);
  fnode_t *f = fbyino(s, ino);
  if (f) {
    f->nlookup = f->nlookup > n ? f->nlookup - n : 0;
    fmaybe_free(s, f);
  }
  pthread_mutex_unlock(&s->nmu);
  return 1;
}

static int hexval(int c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; }

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  session_t *s = fuse_req_userdata(req);
  struct fuse_entry_param e;
  int hit = 0;
  size_t len = strlen(name);
  pthread_mutex_lock(&s->nmu);
  if (s->nb) {
    named_t *n = *nfind(s, parent, name, len);
    if (n) {
      dentry(n->dir, n->k, &e);
      hit = 1;
      fnode_t *f = n->dir->fn ? n->dir->fn[n->k] : NULL;
      if (f) f->nlookup++;
      /* Marked before OP_LOOKED is posted: JS settles the mark (map, offer or unpend) after. */
      if (S_ISREG(e.attr.st_mode) && e.attr.st_size > 0 && (uint64_t)e.attr.st_size <= s->pendmax) cpend(s, e.ino);
      /* Posted before the lock is let go, so before the OP_UNNAMED of an unregistering that
       * follows: JS counts this lookup before it may let the node go. */
      notice(s, OP_LOOKED, e.ino, parent, n->k);
    } else {
      /* A registered listing is the whole of an immutable directory, so a name it lacks never
       * exists there: answered as JS answers such a miss (no node, the kernel keeps the miss
       * for the directory's timeout). A program start probes many (python: __init__.*.so per
       * package, pyvenv.cfg, ._pth files), each a round trip to JS before. */
      dirl_t *d = s->db ? *dfind(s, parent) : NULL;
      if (d) {
        fill_entry(&e, 0, 0, 0, d->timeout, 0);
        hit = 2;
      }
    }
  }
  pthread_mutex_unlock(&s->nmu);
  if (!hit) { send_req(req, OP_LOOKUP, parent, 0, 0, name); return; }
  if (hit == 2) {
    atomic_fetch_add(&s->nmissed, 1);
    fuse_reply_entry(req, &e);
    return;
  }
  atomic_fetch_add(&s->nserved, 1);
  if (fuse_reply_entry(req, &e) == 0) {
    if (rhas(s, e.ino)) {
      if (!s->qpinoff) atomic_store(&s->qcpu, sched_getcpu());
      qpush(s, e.ino | QFRESH);
    }
  } else {
    /* The kernel did not take the entry (the lookup was interrupted): undo the count. */
    if (!fforget(s, e.ino, 1)) notice(s, OP_FORGET, e.ino, 1, 0);
  }
}

/* READDIR(PLUS) of a registered directory, answered here; false when it is not registered. */
static int dserve(session_t *s, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus) {
  pthread_mutex_lock(&s->nmu);
  dirl_t *d = s->db ? *dfind(s, ino) : NULL;
  if (!d) { pthread_mutex_unlock(&s->nmu); return 0; }
  char *buf = malloc(size ? size : 1);
  if (!buf) { pthread_mutex_unlock(&s->nmu); return 0; }
  size_t used = 0;
  uint32_t first = off < 0 ? 0 : (off > (off_t)d->count ? d->count : (uint32_t)off), k = first;
  char name[1024];
  for (; k < d->count; k++) {
    const uint8_t *p = d->packed + d->offs[k];
    uint32_t nl;
    memcpy(&nl, p + 20, 4);
    if (nl >= sizeof name) break;
    memcpy(name, p + 24, nl);
    name[nl] = 0;
    struct fuse_entry_param e;
    dentry(d, k, &e);
    size_t need = plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)k + 1)
                       : fuse_add_direntry(req, buf + used, size - used, name, &e.attr, (off_t)k + 1);
    if (need > size - used) break;
    used += need;
  }
  uint32_t sent = k - first;
  /* As for OP_LOOKED: counted in JS before any unregistering that follows can let them go. */
  if (plus && sent) notice(s, OP_LISTED, ino, first, sent);
  /* Its file nodes are counted here (they stay while counted, whatever happens to d). */
  fnode_t **got = NULL;
  if (plus && sent && d->fn) {
    got = malloc(sent * sizeof *got);
    for (uint32_t j = 0; j < sent; j++) {
      fnode_t *f = d->fn[first + j];
      if (f) f->nlookup++;
      if (got) got[j] = f;
    }
  }
  pthread_mutex_unlock(&s->nmu);
  atomic_fetch_add(&s->dserved, 1);
  if (fuse_reply_buf(req, buf, used) != 0 && plus && sent) {
    notice(s, OP_UNLISTED, ino, first, sent);
    if (got) {
      pthread_mutex_lock(&s->nmu);
      for (uint32_t j = 0; j < sent; j++) if (got[j]) { if (got[j]->nlookup) got[j]->nlookup--; fmaybe_free(s, got[j]); }
      pthread_mutex_unlock(&s->nmu);
    }
  }
  free(got);
  free(buf);
  return 1;
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  session_t *s = fuse_req_userdata(req);
  if (ino >= FBASE) {
    /* A file node of ours: its attributes never change (as JS answers them, a day). */
    struct stat st;
    int hit = 0;
    pthread_mutex_lock(&s->nmu);
    fnode_t *f = fbyino(s, ino);
    if (f) { fill_attr(&st, (double)ino, f->exe ? 0100555 : 0100444, f->size); hit = 1; }
    pthread_mutex_unlock(&s->nmu);
    if (hit) { atomic_fetch_add(&s->fattr, 1); fuse_reply_attr(req, &st, 86400); return; }
  } else {
    struct stat st;
    double timeout = -1;
    pthread_mutex_lock(&s->nmu);
    for (int k = 0; k < s->nfixed; k++) if (s->fixed[k].ino == ino) {
      fill_attr(&st, (double)ino, s->fixed[k].mode, s->fixed[k].size);
      timeout = s->fixed[k].timeout;
    }
    pthread_mutex_unlock(&s->nmu);
    if (timeout >= 0) { atomic_fetch_add(&s->dattr, 1); fuse_reply_attr(req, &st, timeout); return; }
  }
  send_req(req, OP_GETATTR, ino, 0, 0, NULL);
}
/* A symlink of a registered listing: its target is answered here (the node's target never
 * changes: symlink nodes are keyed by target, and node ids are never reused). */
static void ll_readlink(fuse_req_t req, fuse_ino_t ino) {
  session_t *s = fuse_req_userdata(req);
  char t[PATH_MAX + 1];
  int hit = 0;
  pthread_mutex_lock(&s->nmu);
  if (s->lb) {
    linkn_t *l = s->lb[ino & (LBUCKETS - 1)];
    while (l && l->ino != ino) l = l->hnext;
    if (l && l->len <= PATH_MAX) {
      memcpy(t, l->target, l->len);
      t[l->len] = 0;
      hit = 1;
    }
  }
  pthread_mutex_unlock(&s->nmu);
  if (!hit) { send_req(req, OP_READLINK, ino, 0, 0, NULL); return; }
  atomic_fetch_add(&s->lserved, 1);
  fuse_reply_readlink(req, t);
}
static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  session_t *s = fuse_req_userdata(req);
  if (rserve(s, req, ino, size, off) || sserve(s, req, ino, size, off) || cserve(s, req, ino, size, off) || cpark(s, req, ino, size, off)) {
    /* A READ held for a map or a stream waits on JS (the map comes at its OP_LOOKED): the batch
     * the loop thread holds goes now. */
    if (s->bdelay && (atomic_load(&s->cparkn) || atomic_load(&s->nparked))) {
      pthread_mutex_lock(&s->bmu);
      bflush(s);
      pthread_mutex_unlock(&s->bmu);
    }
    return;
  }
  send_req(req, OP_READ, ino, size, off, NULL);
}
static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  if (!dserve(fuse_req_userdata(req), req, ino, size, off, 1)) send_req(req, OP_READDIRPLUS, ino, size, off, NULL);
}
static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)fi;
  if (!dserve(fuse_req_userdata(req), req, ino, size, off, 0)) send_req(req, OP_READDIR, ino, size, off, NULL);
}
static void ll_statfs(fuse_req_t req, fuse_ino_t ino) { send_req(req, OP_STATFS, ino, 0, 0, NULL); }
static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) { send_req(req, OP_GETXATTR, ino, size, 0, name); }
static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) { send_req(req, OP_LISTXATTR, ino, size, 0, NULL); }

/* Answered here, never in JS: ENOSYS makes the kernel stop sending OPEN/OPENDIR (and RELEASE)
 * for the connection and open everything with keep_cache / cache_dir. Without these two
 * handlers libfuse 3.14 answers OPEN with success and no flags, and the kernel then drops a
 * file's pages on every open. */
static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { (void)ino; (void)fi; fuse_reply_err(req, ENOSYS); }

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  session_t *s = fuse_req_userdata(req);
  fuse_reply_none(req);
  rforget(s, ino);
  sforget(s, ino);
  cforget(s, ino);
  cunpend(s, ino, 0);
  if (fforget(s, ino, n)) return;
  notice(s, OP_FORGET, ino, n, 0);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f) {
  session_t *s = fuse_req_userdata(req);
  /* Ours applied here; the others (directories, symlinks) go to JS. */
  msg_t *m = mk(OP_FORGET, NULL, 0, count, 0, (const char *)f, count * sizeof(*f));
  struct fuse_forget_data *out = m ? (struct fuse_forget_data *)m->data : NULL;
  size_t js = 0;
  for (size_t k = 0; k < count; k++) {
    rforget(s, f[k].ino); sforget(s, f[k].ino); cforget(s, f[k].ino); cunpend(s, f[k].ino, 0);
    if (!fforget(s, f[k].ino, f[k].nlookup) && out) out[js++] = f[k];
  }
  fuse_reply_none(req);
  if (m && js) { m->a = js; post(s, m); }
  else free(m);
}

static const struct fuse_lowlevel_ops OPS = {
  .init = ll_init, .lookup = ll_lookup, .forget = ll_forget, .forget_multi = ll_forget_multi, .getattr = ll_getattr,
  .readlink = ll_readlink, .read = ll_read, .readdir = ll_readdir, .readdirplus = ll_readdirplus, .statfs = ll_statfs,
  .getxattr = ll_getxattr, .listxattr = ll_listxattr, .open = ll_open, .opendir = ll_open,
};

/* After a request the loop thread tries /dev/fuse again (non-blocking) for up to s->spin us before
 * blocking in poll(). Why: on this kind of guest (KVM, cpuidle haltpoll with guest_halt_poll_ns 0)
 * an idle vCPU halts at once, and the kernel waking a thread blocked in poll() on a halted vCPU
 * costs an IPI and a VM exit and entry; a cold find asks the next READDIRPLUS within tens of us of
 * the last reply (~10k round trips a walk), so a thread still running takes it without that
 * wake-up. Bounded: it only follows a request (an idle mount spins at most s->spin us after its
 * last one), ends at the batch hold's deadline (the flush is not delayed) and at stop(). Between
 * tries the CPU is yielded: with 2 vCPUs the requester may need this one. */
#ifndef SPIN_US
#define SPIN_US 50
#endif
/* The CPU's spin-wait hint (x86 pause, arm64 yield); nothing elsewhere (the yield below remains). */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
static int spin_take(session_t *s, struct fuse_buf *buf, uint64_t deadline) {
  uint64_t t = now_ns(CLOCK_MONOTONIC), end = t + (uint64_t)s->spin * 1000ull;
  if (deadline && deadline < end) end = deadline;
  while (t < end && !atomic_load(&s->stopping)) {
    int res = fuse_session_receive_buf(s->se, buf);
    if (res != -EAGAIN && res != -EINTR && res != -ENOENT) {
      if (res > 0) atomic_fetch_add(&s->spun, 1);
      return res; /* a request, or the end (<= 0) as for receive_buf in loop */
    }
    for (int k = 0; k < 16; k++) cpu_relax();
    sched_yield();
    t = now_ns(CLOCK_MONOTONIC);
  }
  return -EAGAIN;
}

static void *loop(void *arg) {
  session_t *s = arg;
  on_loop = 1;
  /* Named for diagnostics (and the test that its spin ends). */
  pthread_setname_np(pthread_self(), "miq-fuse");
  struct fuse_buf buf;
  memset(&buf, 0, sizeof buf);
  struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN }, { .fd = s->evfd, .events = POLLIN } };
  int after = 0; /* the last turn processed a request: spin before blocking */
  for (;;) {
    int tmo = -1;
    uint64_t deadline = 0;
    if (s->bdelay) {
      pthread_mutex_lock(&s->bmu);
      if (s->bheld) {
        uint64_t age = now_ns(CLOCK_MONOTONIC) - s->bheld_t, hold = (uint64_t)(s->blisted && s->ldelay > s->bdelay ? s->ldelay : s->bdelay) * 1000ull;
        if (age >= hold) bflush(s);
        else { tmo = (int)((hold - age + 999999) / 1000000); deadline = s->bheld_t + hold; }
      }
      pthread_mutex_unlock(&s->bmu);
    }
    int res;
    if (after && s->spin) {
      after = 0;
      if ((res = spin_take(s, &buf, deadline)) == -EAGAIN) continue; /* (the hold's timeout is taken again) */
    } else {
      int r = poll(p, 2, tmo);
      if (r == 0) continue;
      if (r < 0) { if (errno == EINTR) continue; break; }
      if (p[1].revents) break;
      res = fuse_session_receive_buf(s->se, &buf);
      if (res == -EINTR || res == -EAGAIN || res == -ENOENT) continue;
    }
    if (res <= 0) break;
    handed = 0;
    fuse_session_process_buf(s->se, &buf);
    after = !handed;
  }
  free(buf.mem);
  fuse_session_exit(s->se);
  u_stop(s);
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null >= 0) { dup2(null, s->fd); close(null); }
  msg_t *m = mk(OP_END, NULL, 0, 0, 0, NULL, 0);
  if (m) post(s, m);
  return NULL;
}

/* ---- FUSE over io_uring (MIQ_MOUNT_URING=1; fuse-needs §38) ----
 * Kernel 6.14+ carries requests over io_uring, one queue per CPU: a request is queued on the
 * queue of the CPU that made it, and a thread pinned to that CPU answers it there, so the
 * requester's CPU runs the answer instead of waking a second (halted) vCPU. Used only when the
 * kernel allows it (/sys/module/fuse/parameters/enable_uring is Y) and MIQ_MOUNT_URING=1.
 * libfuse 3.14 does not know the protocol, so the session's writes go through a custom io hook:
 * the INIT reply gets FUSE_OVER_IO_URING, and a reply whose `unique` is a request taken from a
 * ring is copied into that ring entry and committed by the ring's thread (COMMIT_AND_FETCH);
 * everything else (notifications, replies to requests read from /dev/fuse) is written as before.
 * Requests from the rings go through fuse_session_process_buf like the loop thread's, so every
 * handler, answer and check is the same one. FORGETs and INTERRUPTs still come through /dev/fuse
 * (the loop thread). The rings are set up before INIT is answered: if any fails, INIT does not
 * offer io_uring and the mount is the classic one. Teardown: the loop's end stops the ring
 * threads, which close their rings (the kernel cancels the entries it holds, and ends the
 * requests still in userspace when the connection goes) before /dev/fuse is replaced. */
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <sched.h>

#define U_OVER_IO_URING (1ull << 41) /* INIT flags2 bit 9 */
#define U_INIT_EXT (1u << 30)
#define U_CMD_REGISTER 1u
#define U_CMD_COMMIT_AND_FETCH 2u
#define U_ENTS 16                    /* entries per queue (requests JS holds keep theirs) */
#define U_EFD_TAG ((uint64_t)-1)

/* The kernel's uapi (include/uapi/linux/fuse.h, 7.42); Debian 12's header predates it. */
struct u_ent_in_out { uint64_t flags, commit_id; uint32_t payload_sz, padding; uint64_t reserved; };
struct u_req_header { char in_out[128]; char op_in[128]; struct u_ent_in_out eio; };
struct u_cmd_req { uint64_t flags, commit_id; uint16_t qid; uint8_t padding[6]; };
struct u_in_header { uint32_t len, opcode; uint64_t unique, nodeid; uint32_t uid, gid, pid; uint16_t total_extlen, padding; };
struct u_out_header { uint32_t len; int32_t error; uint64_t unique; };

typedef struct uring uring_t;
typedef struct uent {
  struct u_req_header *hdr;
  char *payload;
  struct iovec iov[2];
  uint64_t unique;
  uring_t *r;
  int idx;
  struct uent *hnext, *dnext;
} uent_t;

struct uring {
  struct uset *u;
  int qid, rfd, efd, stop;
  unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
  char *sqes;
  struct io_uring_cqe *cqes;
  void *sqmap, *sqesmap;
  size_t sqmaplen, sqesmaplen;
  unsigned pending;
  uent_t ents[U_ENTS];
  pthread_mutex_t mu;        /* done */
  uent_t *done;              /* answered by other threads, to commit */
  uint64_t efdval;
  char *buf;                 /* the request as libfuse wants it */
  pthread_t th;
  int started;
};

typedef struct uset {
  session_t *s;
  int nq, fd, state;         /* state: 0 prepared, 1 INIT to patch, 2 on, 3 off */
  size_t payload;
  uring_t *rings;
  pthread_mutex_t mu;        /* hb */
  uent_t *hb[256];           /* entries in userspace by unique */
  atomic_ullong served;
} uset_t;

static int u_possible_cpus(void) {
  int n = 0;
  FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
  if (f) {
    char line[256];
    if (fgets(line, sizeof line, f)) {
      /* "0-1", "0", "0-3,5": the highest listed + 1 */
      for (char *p = line; *p;) {
        if (*p < '0' || *p > '9') { p++; continue; }
        char *e;
        long v = strtol(p, &e, 10);
        if (v + 1 > n && v < 4096) n = (int)v + 1;
        p = e;
      }
    }
    fclose(f);
  }
  return n;
}

static int u_enabled(void) {
  const char *e = getenv("MIQ_MOUNT_URING");
  if (!e || strcmp(e, "1") != 0) return 0;
  int fd = open("/sys/module/fuse/parameters/enable_uring", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char c = 0;
  ssize_t n = read(fd, &c, 1);
  close(fd);
  return n == 1 && c == 'Y';
}

static void u_free_ring(uring_t *r, size_t payload) {
  for (int k = 0; k < U_ENTS; k++) {
    if (r->ents[k].payload) munmap(r->ents[k].payload, payload);
    free(r->ents[k].hdr);
    r->ents[k].payload = NULL;
    r->ents[k].hdr = NULL;
  }
  if (r->sqesmap) munmap(r->sqesmap, r->sqesmaplen);
  if (r->sqmap) munmap(r->sqmap, r->sqmaplen);
  if (r->rfd >= 0) close(r->rfd);
  if (r->efd >= 0) close(r->efd);
  free(r->buf);
  r->sqesmap = r->sqmap = NULL;
  r->rfd = r->efd = -1;
  r->buf = NULL;
}

static int u_ring_init(uring_t *r, size_t payload) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  /* Only the ring's thread submits and reaps: task work runs when it waits, no signals. Made
   * here (before INIT is answered), enabled by that thread (the ring is bound to its enabler). */
  p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
  r->rfd = (int)syscall(__NR_io_uring_setup, 2 * U_ENTS + 2, &p);
  r->efd = eventfd(0, EFD_CLOEXEC);
  if (r->rfd < 0 || r->efd < 0 || !(p.features & IORING_FEAT_SINGLE_MMAP)) return -1;
  size_t sqsz = p.sq_off.array + p.sq_entries * sizeof(unsigned), cqsz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  r->sqmaplen = sqsz > cqsz ? sqsz : cqsz;
  r->sqmap = mmap(NULL, r->sqmaplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->rfd, IORING_OFF_SQ_RING);
  if (r->sqmap == MAP_FAILED) { r->sqmap = NULL; return -1; }
  r->sqesmaplen = (size_t)p.sq_entries * 128;
  r->sqesmap = mmap(NULL, r->sqesmaplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->rfd, IORING_OFF_SQES);
  if (r->sqesmap == MAP_FAILED) { r->sqesmap = NULL; return -1; }
  char *q = r->sqmap;
  r->sqes = r->sqesmap;
  r->sq_tail = (unsigned *)(q + p.sq_off.tail);
  r->sq_mask = (unsigned *)(q + p.sq_off.ring_mask);
  r->sq_array = (unsigned *)(q + p.sq_off.array);
  r->cq_head = (unsigned *)(q + p.cq_off.head);
  r->cq_tail = (unsigned *)(q + p.cq_off.tail);
  r->cq_mask = (unsigned *)(q + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)(q + p.cq_off.cqes);
  r->buf = malloc(payload + 512);
  if (!r->buf) return -1;
  for (int k = 0; k < U_ENTS; k++) {
    uent_t *e = &r->ents[k];
    e->r = r;
    e->idx = k;
    e->hdr = calloc(1, sizeof *e->hdr);
    /* Pages of a payload are touched only as far as replies reach. */
    void *pl = mmap(NULL, payload, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!e->hdr || pl == MAP_FAILED) return -1;
    e->payload = pl;
    e->iov[0].iov_base = e->hdr; e->iov[0].iov_len = sizeof *e->hdr;
    e->iov[1].iov_base = e->payload; e->iov[1].iov_len = payload;
  }
  return 0;
}

/* Called from ll_init (the loop thread, before INIT is answered): sets up every queue's ring, or
 * none (then INIT does not offer io_uring). */
static void u_prepare(session_t *s, struct fuse_conn_info *c) {
  uset_t *u = s->u;
  if (!u) return;
  int nq = u_possible_cpus();
  u->payload = c->max_write > (1u << 20) ? c->max_write : (1u << 20);
  if (u->payload < 8192) u->payload = 8192;
  u->rings = nq > 0 ? calloc((size_t)nq, sizeof *u->rings) : NULL;
  int ok = u->rings != NULL;
  for (int q = 0; ok && q < nq; q++) {
    uring_t *r = &u->rings[q];
    r->u = u;
    r->qid = q;
    r->rfd = r->efd = -1;
    pthread_mutex_init(&r->mu, NULL);
    u->nq = q + 1;
    if (u_ring_init(r, u->payload) != 0) ok = 0;
  }
  if (!ok) {
    for (int q = 0; q < u->nq; q++) u_free_ring(&u->rings[q], u->payload);
    free(u->rings);
    u->rings = NULL;
    u->nq = 0;
    u->state = 3;
    return;
  }
  u->state = 1;
}

static void u_sqe(uring_t *r, uint8_t op, uint32_t cmd, uint64_t addr, uint32_t len, uint64_t data, uint64_t commit) {
  unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask;
  struct io_uring_sqe *e = (struct io_uring_sqe *)(r->sqes + (size_t)idx * 128);
  memset(e, 0, 128);
  e->opcode = op;
  e->addr = addr;
  e->len = len;
  e->user_data = data;
  if (op == IORING_OP_URING_CMD) {
    e->fd = r->u->fd;
    e->cmd_op = cmd;
    struct u_cmd_req *c = (struct u_cmd_req *)e->cmd;
    c->qid = (uint16_t)r->qid;
    c->commit_id = commit;
  } else {
    e->fd = r->efd;
  }
  r->sq_array[idx] = idx;
  atomic_store_explicit((_Atomic unsigned *)r->sq_tail, tail + 1, memory_order_release);
  r->pending++;
}

static void u_commit(uring_t *r, uent_t *e) {
  u_sqe(r, IORING_OP_URING_CMD, U_CMD_COMMIT_AND_FETCH, (uint64_t)(uintptr_t)e->iov, 2, (uint64_t)e->idx, e->unique);
}

static void u_take_done(uring_t *r) {
  pthread_mutex_lock(&r->mu);
  uent_t *d = r->done;
  r->done = NULL;
  pthread_mutex_unlock(&r->mu);
  while (d) { uent_t *n = d->dnext; u_commit(r, d); d = n; }
}

static void *u_thread(void *arg) {
  uring_t *r = arg;
  uset_t *u = r->u;
  session_t *s = u->s;
  cpu_set_t cs;
  CPU_ZERO(&cs);
  CPU_SET(r->qid, &cs);
  pthread_setaffinity_np(pthread_self(), sizeof cs, &cs);
  if (syscall(__NR_io_uring_register, r->rfd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) != 0) return NULL;
  for (int k = 0; k < U_ENTS; k++) u_sqe(r, IORING_OP_URING_CMD, U_CMD_REGISTER, (uint64_t)(uintptr_t)r->ents[k].iov, 2, (uint64_t)k, 0);
  u_sqe(r, IORING_OP_READ, 0, (uint64_t)(uintptr_t)&r->efdval, 8, U_EFD_TAG, 0);
  int live = U_ENTS;
  while (!r->stop && live > 0) {
    unsigned sub = r->pending;
    int n = (int)syscall(__NR_io_uring_enter, r->rfd, sub, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) break;
    if (n > 0) r->pending -= (unsigned)n < sub ? (unsigned)n : sub;
    unsigned head = *r->cq_head, tail = atomic_load_explicit((_Atomic unsigned *)r->cq_tail, memory_order_acquire);
    for (; head != tail; head++) {
      struct io_uring_cqe *c = &r->cqes[head & *r->cq_mask];
      uint64_t tag = c->user_data;
      int res = c->res;
      atomic_store_explicit((_Atomic unsigned *)r->cq_head, head + 1, memory_order_release);
      if (tag == U_EFD_TAG) {
        if (!r->stop) u_sqe(r, IORING_OP_READ, 0, (uint64_t)(uintptr_t)&r->efdval, 8, U_EFD_TAG, 0);
        continue;
      }
      if (tag >= U_ENTS) continue;
      uent_t *e = &r->ents[tag];
      if (res == -EAGAIN) { u_sqe(r, IORING_OP_URING_CMD, U_CMD_REGISTER, (uint64_t)(uintptr_t)e->iov, 2, tag, 0); continue; }
      if (res < 0) { live--; continue; } /* the connection is going (ENOTCONN) */
      struct u_in_header *ih = (struct u_in_header *)e->hdr->in_out;
      uint32_t psz = e->hdr->eio.payload_sz;
      if (ih->len < sizeof *ih + psz || ih->len - sizeof *ih - psz > sizeof e->hdr->op_in || psz > u->payload) { live--; continue; }
      size_t opsz = ih->len - sizeof *ih - psz;
      memcpy(r->buf, ih, sizeof *ih);
      memcpy(r->buf + sizeof *ih, e->hdr->op_in, opsz);
      memcpy(r->buf + sizeof *ih + opsz, e->payload, psz);
      e->unique = ih->unique;
      pthread_mutex_lock(&u->mu);
      e->hnext = u->hb[(e->unique >> 1) & 255];
      u->hb[(e->unique >> 1) & 255] = e;
      pthread_mutex_unlock(&u->mu);
      atomic_fetch_add(&u->served, 1);
      struct fuse_buf fb;
      memset(&fb, 0, sizeof fb);
      fb.size = ih->len;
      fb.mem = r->buf;
      fuse_session_process_buf(s->se, &fb);
    }
    u_take_done(r);
  }
  return NULL;
}

/* The session's writes (fuse_custom_io.writev), from any thread. */
static ssize_t u_writev(int fd, struct iovec *iov, int count, void *ud) {
  session_t *s = ud;
  uset_t *u = s->u;
  if (u && u->state == 1 && count == 2 && iov[0].iov_len == sizeof(struct u_out_header) && iov[1].iov_len >= 40) {
    /* The INIT reply (the first write): offer FUSE_OVER_IO_URING, then start the queues. */
    uint32_t *flags = (uint32_t *)((char *)iov[1].iov_base + 12), *flags2 = (uint32_t *)((char *)iov[1].iov_base + 36);
    *flags |= U_INIT_EXT;
    *flags2 |= (uint32_t)(U_OVER_IO_URING >> 32);
    ssize_t w = writev(fd, iov, count);
    u->state = 2;
    for (int q = 0; q < u->nq; q++)
      if (pthread_create(&u->rings[q].th, NULL, u_thread, &u->rings[q]) == 0) u->rings[q].started = 1;
    /* A queue without its thread: the kernel takes the rings only once every queue has an entry
     * (until then requests come through /dev/fuse, as seen on 6.18), so the mount stays classic. */
    return w;
  }
  if (u && u->state == 2 && count >= 1 && iov[0].iov_len >= sizeof(struct u_out_header)) {
    struct u_out_header *oh = iov[0].iov_base;
    uent_t *e = NULL;
    if (oh->unique) {
      pthread_mutex_lock(&u->mu);
      uent_t **p = &u->hb[(oh->unique >> 1) & 255];
      while (*p && (*p)->unique != oh->unique) p = &(*p)->hnext;
      if (*p) { e = *p; *p = e->hnext; }
      pthread_mutex_unlock(&u->mu);
    }
    if (e) {
      size_t at = 0, total = 0;
      for (int k = 0; k < count; k++) total += iov[k].iov_len;
      struct u_out_header h = *oh;
      if (total - sizeof h > u->payload) {
        h.error = -EIO;
        h.len = sizeof h;
      } else {
        size_t first = iov[0].iov_len - sizeof h;
        if (first) memcpy(e->payload, (char *)iov[0].iov_base + sizeof h, first);
        at = first;
        for (int k = 1; k < count; k++) { memcpy(e->payload + at, iov[k].iov_base, iov[k].iov_len); at += iov[k].iov_len; }
      }
      memcpy(e->hdr->in_out, &h, sizeof h);
      e->hdr->eio.payload_sz = (uint32_t)at;
      uring_t *r = e->r;
      pthread_mutex_lock(&r->mu);
      e->dnext = r->done;
      r->done = e;
      pthread_mutex_unlock(&r->mu);
      if (!pthread_equal(pthread_self(), r->th)) { uint64_t one = 1; if (write(r->efd, &one, sizeof one) < 0) {} }
      return (ssize_t)total;
    }
  }
  return writev(fd, iov, count);
}

static ssize_t u_read(int fd, void *buf, size_t len, void *ud) { (void)ud; return read(fd, buf, len); }

/* At mount: the hook, if asked for and allowed. */
static void u_mount(session_t *s) {
  if (!u_enabled()) return;
  uset_t *u = calloc(1, sizeof *u);
  if (!u) return;
  u->s = s;
  u->fd = s->fd;
  pthread_mutex_init(&u->mu, NULL);
  s->u = u;
  struct fuse_custom_io io = { .writev = u_writev, .read = u_read };
  if (fuse_session_custom_io(s->se, &io, s->fd) != 0) { s->u = NULL; free(u); }
}

/* At the loop's end (the loop thread): the ring threads stop and close their rings. */
static void u_stop(session_t *s) {
  uset_t *u = s->u;
  if (!u || !u->rings) return;
  for (int q = 0; q < u->nq; q++) {
    uring_t *r = &u->rings[q];
    if (!r->started) continue;
    r->stop = 1;
    uint64_t one = 1;
    if (write(r->efd, &one, sizeof one) < 0) {}
    pthread_join(r->th, NULL);
    r->started = 0;
  }
  /* Without its maps and its descriptor the ring goes, and with it the entries the kernel held. */
  for (int q = 0; q < u->nq; q++) {
    uring_t *r = &u->rings[q];
    if (r->sqesmap) munmap(r->sqesmap, r->sqesmaplen);
    if (r->sqmap) munmap(r->sqmap, r->sqmaplen);
    r->sqesmap = r->sqmap = NULL;
    if (r->rfd >= 0) close(r->rfd);
    r->rfd = -1;
  }
}

/* At destroy (nothing pending any more): the rings' memory. */
static void u_destroy(session_t *s) {
  uset_t *u = s->u;
  if (!u) return;
  pthread_mutex_lock(&u->mu);
  u->state = 3;
  memset(u->hb, 0, sizeof u->hb);
  pthread_mutex_unlock(&u->mu);
  for (int q = 0; q < u->nq; q++) u_free_ring(&u->rings[q], u->payload);
  free(u->rings);
  free(u);
  s->u = NULL;
}

/* ---- JS thread ---- */

static double slot_id(uint32_t idx, uint32_t gen) { return (double)idx + (double)gen * 4294967296.0; }

static uint32_t slot_put(session_t *s, fuse_req_t req, uint32_t *gen) {
  uint32_t i;
  if (s->nfree) i = s->free_list[--s->nfree];
  else {
    if (s->nslots == s->cap) {
      uint32_t nc = s->cap ? s->cap * 2 : 256;
      s->slots = realloc(s->slots, nc * sizeof(*s->slots));
      s->gens = realloc(s->gens, nc * sizeof(*s->gens));
      s->free_list = realloc(s->free_list, nc * sizeof(*s->free_list));
      if (s->qdebug) s->qs = realloc(s->qs, nc * sizeof(*s->qs));
      for (uint32_t k = s->cap; k < nc; k++) { s->slots[k] = NULL; s->gens[k] = 0; }
      s->cap = nc;
    }
    i = s->nslots++;
  }
  s->slots[i] = req;
  s->gens[i]++;
  s->used++;
  *gen = s->gens[i];
  return i;
}

static fuse_req_t slot_take(session_t *s, double id) {
  if (!(id >= 0)) return NULL;
  uint64_t v = (uint64_t)id;
  uint32_t i = (uint32_t)(v & 0xffffffffu), g = (uint32_t)(v >> 32);
  if (i >= s->nslots || s->gens[i] != g || !s->slots[i]) return NULL;
  fuse_req_t r = s->slots[i];
  s->slots[i] = NULL;
  /* MIQ_DEBUG_QUEUE: the request leaves JS (answered, or handed to the binding): monotonic ms,
   * to join with a trace of the kernel's fuse_request_send / fuse_request_end (trace_clock mono). */
  if (s->qdebug)
    fprintf(stderr, "miq fuse replied: op=%d ino=%llu posted=%.3f taken=%.3f replied=%.3f jscpu=%.3f ms\n", s->qs[i].op, (unsigned long long)s->qs[i].ino, s->qs[i].t0 / 1e6,
            s->qs[i].tt / 1e6, now_ns(CLOCK_MONOTONIC) / 1e6, (now_ns(s->jsclock) - s->qs[i].cpu) / 1e6);
  s->free_list[s->nfree++] = i;
  s->used--;
  return r;
}

/* slot_untake(s, id, r): undoes the slot_take(s, id) just made (its slot is last on the free
 * list): a request JS handed back because the binding could not answer it after all. */
static void slot_untake(session_t *s, double id, fuse_req_t r) {
  uint32_t i = (uint32_t)((uint64_t)id & 0xffffffffu);
  s->nfree--;
  s->slots[i] = r;
  s->used++;
}

/* A request taken: its queue figures (and MIQ_DEBUG_QUEUE's line). */
static void qfigures(session_t *s, msg_t *m, uint64_t t) {
  uint64_t wait = t > m->t0 ? t - m->t0 : 0, ahead = m->ahead;
  uint64_t nn = atomic_load(&s->cbn) - m->cbn0, rn = atomic_load(&s->cbr) - m->cbr0;
  s->qreqs++;
  s->qwait += wait;
  if (wait > s->qwaitmax) s->qwaitmax = wait;
  s->qahead += ahead;
  if (ahead > s->qaheadmax) s->qaheadmax = ahead;
  s->qnotens += nn;
  s->qreqns += rn;
  /* Taken since it was posted (this one counted already). */
  uint64_t tn = atomic_load(&s->takenn) - m->tn0, tr = atomic_load(&s->takenr) - m->tr0 - 1;
  s->qnotes += tn;
  s->qreqsbefore += tr;
  if (s->qdebug) {
    uint64_t cpu = now_ns(s->jsclock) - m->cpu0, rq = js_runq(s) - m->rq0;
    fprintf(stderr, "miq fuse queue: op=%d ino=%llu ahead=%llu notices=%llu requests=%llu wait=%.3f inNotices=%.3f inRequests=%.3f jscpu=%.3f runq=%.3f ms\n", m->op,
            (unsigned long long)m->ino, (unsigned long long)ahead, (unsigned long long)tn, (unsigned long long)tr, wait / 1e6, nn / 1e6, rn / 1e6, cpu / 1e6, rq / 1e6);
  }
}

static void call_msg(napi_env env, napi_value cb, session_t *s, msg_t *m);

/* A batch of notices taken on the JS thread (see post): closed to further notices, then handed
 * to JS as one call, (OP_BATCH, 0, count, records, undefined), the records (op, ino, a, b) in a
 * Float64Array JS reads before it returns (one array, reused: grown when a batch needs more). On
 * teardown (env NULL) or while dropping it is only freed. */
static void call_batch(napi_env env, napi_value cb, session_t *s, msg_t *m) {
  pthread_mutex_lock(&s->bmu);
  if (s->bopen == m) s->bopen = NULL;
  pthread_mutex_unlock(&s->bmu);
  nbatch_t *b = (nbatch_t *)m->data;
  size_t n = b->n;
  atomic_fetch_add(&s->takenn, n);
  if (n > atomic_load(&s->bmax)) atomic_store(&s->bmax, n);
  if (env && !s->dropping && n) {
    uint64_t t = now_ns(CLOCK_MONOTONIC);
    napi_value arr = NULL, undef, argv[5];
    if (s->bref && s->bcap >= n) napi_get_reference_value(env, s->bref, &arr);
    if (!arr) {
      /* Records for at least twice this batch, and 256 (8 KiB). */
      size_t cap = n * 2 > 256 ? n * 2 : 256;
      napi_value ab;
      void *d = NULL;
      if (napi_create_arraybuffer(env, cap * 4 * sizeof(double), &d, &ab) == napi_ok && napi_create_typedarray(env, napi_float64_array, cap * 4, ab, 0, &arr) == napi_ok) {
        if (s->bref) napi_delete_reference(env, s->bref);
        s->bref = NULL;
        s->bcap = 0;
        s->bdata = d;
        /* Not kept once the session is destroyed (nothing would delete the reference). */
        if (!s->destroyed && napi_create_reference(env, arr, 1, &s->bref) == napi_ok) s->bcap = cap;
      } else arr = NULL;
    }
    if (arr) {
      memcpy(s->bdata, b->r, n * 4 * sizeof(double));
      napi_get_undefined(env, &undef);
      napi_create_int32(env, OP_BATCH, &argv[0]);
      napi_create_double(env, 0, &argv[1]);
      napi_create_double(env, (double)n, &argv[2]);
      argv[3] = arr;
      argv[4] = undef;
      if (napi_call_function(env, undef, cb, 5, argv, NULL) == napi_pending_exception) {
        napi_value e;
        napi_get_and_clear_last_exception(env, &e);
      }
    }
    atomic_fetch_add(&s->cbn, now_ns(CLOCK_MONOTONIC) - t);
  }
  free(b->r);
  free(m);
}

/* A message taken on the JS thread: counted for the queue figures (see post), then handled. */
static void call_js(napi_env env, napi_value cb, void *ctx, void *data) {
  session_t *s = ctx;
  msg_t *m = data;
  if (m->op == OP_BATCH) return call_batch(env, cb, s, m);
  int req = m->req != NULL;
  atomic_fetch_add(req ? &s->takenr : &s->takenn, 1);
  uint64_t t = now_ns(CLOCK_MONOTONIC);
  if (req && env) qfigures(s, m, t);
  call_msg(env, cb, s, m);
  uint64_t d = now_ns(CLOCK_MONOTONIC) - t;
  atomic_fetch_add(req ? &s->cbr : &s->cbn, d);
}

static void call_msg(napi_env env, napi_value cb, session_t *s, msg_t *m) {
  if (m->req) atomic_fetch_sub(&s->queued, 1);
  if (!env || s->dropping) {
    if (m->req) fuse_reply_err(m->req, EIO);
    if (m->op == OP_END) s->ended = 1;
    free(m);
    return;
  }
  if (m->op == OP_END) s->ended = 1;
  napi_value undef, argv[5];
  napi_get_undefined(env, &undef);
  /* Requests and OP_END only: notices come in batches (call_batch). */
  double sid = 0;
  if (m->req) {
    uint32_t gen, i = slot_put(s, m->req, &gen);
    sid = slot_id(i, gen);
    if (s->qdebug) s->qs[i] = (struct qslot){ .t0 = m->t0, .tt = now_ns(CLOCK_MONOTONIC), .cpu = now_ns(s->jsclock), .ino = m->ino, .op = m->op };
  }
  napi_create_int32(env, m->op, &argv[0]);
  napi_create_double(env, sid, &argv[1]);
  napi_create_double(env, (double)m->ino, &argv[2]);
  if (m->op == OP_LOOKUP || m->op == OP_GETXATTR) {
    /* latin1 keeps every byte of a name as one char: tree names are raw bytes. */
    napi_create_string_latin1(env, m->data, m->len, &argv[3]);
    napi_create_double(env, (double)m->a, &argv[4]);
  } else {
    napi_create_double(env, (double)m->a, &argv[3]);
    napi_create_double(env, (double)m->b, &argv[4]);
  }
  napi_status st = napi_call_function(env, undef, cb, 5, argv, NULL);
  if (st == napi_pending_exception) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
    if (m->req) {
      fuse_req_t r = slot_take(s, sid);
      if (r) fuse_reply_err(r, EIO);
    }
  }
  free(m);
}

static session_t *get_session(napi_env env, napi_value v) {
  session_t *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) { napi_throw_type_error(env, NULL, "miqfuse: not a session"); return NULL; }
  if (s->destroyed) { napi_throw_error(env, NULL, "miqfuse: session destroyed"); return NULL; }
  return s;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "miqfuse: missing arguments");
    return 0;
  }
  return 1;
}

static double num(napi_env env, napi_value v) { double d = 0; napi_get_value_double(env, v, &d); return d; }

/* Takes the request of a slot; throws when it was answered already. */
static fuse_req_t take(napi_env env, session_t *s, napi_value v) {
  fuse_req_t r = slot_take(s, num(env, v));
  if (!r && !s->dropping) napi_throw_error(env, NULL, "miqfuse: request already answered (or unknown)");
  return r;
}

static void fill_attr(struct stat *st, double ino, double mode, double size) {
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)ino;
  st->st_mode = (mode_t)mode;
  st->st_nlink = S_ISDIR(st->st_mode) ? 2 : 1;
  st->st_size = (off_t)size;
  st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
  st->st_blksize = 128 * 1024;
  st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = 1;
}

/* mount(mountpoint, argv[], handler) -> session */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  char mp[4096];
  size_t n;
  NAPI(napi_get_value_string_utf8(env, argv[0], mp, sizeof mp, &n));
  uint32_t na = 0;
  NAPI(napi_get_array_length(env, argv[1], &na));
  char **args = calloc(na + 2, sizeof(char *));
  args[0] = strdup("miq");
  for (uint32_t k = 0; k < na; k++) {
    napi_value e;
    char buf[4096];
    napi_get_element(env, argv[1], k, &e);
    napi_get_value_string_utf8(env, e, buf, sizeof buf, &n);
    args[k + 1] = strdup(buf);
  }
  struct fuse_args fa = FUSE_ARGS_INIT((int)na + 1, args);
  session_t *s = calloc(1, sizeof *s);
  s->evfd = -1;
  pthread_mutex_init(&s->rmu, NULL);
  pthread_mutex_init(&s->bmu, NULL);
  { const char *bd = getenv("MIQ_MOUNT_NOTICE_HOLD_US"); s->bdelay = bd && *bd ? atoi(bd) : 1000; if (s->bdelay < 0) s->bdelay = 0; }
  { const char *ld = getenv("MIQ_MOUNT_LISTED_HOLD_US"); s->ldelay = ld && *ld ? atoi(ld) : 8000; if (s->ldelay < 0) s->ldelay = 0; }
  { const char *sp = getenv("MIQ_MOUNT_SPIN_US"); s->spin = sp && *sp ? atoi(sp) : SPIN_US; if (s->spin < 0) s->spin = 0; if (s->spin > 1000) s->spin = 1000; }
  pthread_mutex_init(&s->nmu, NULL);
  pthread_mutex_init(&s->qmu, NULL);
  pthread_cond_init(&s->qcv, NULL);
  pthread_mutex_init(&s->smu, NULL);
  pthread_mutex_init(&s->cmu, NULL);
  pthread_mutex_init(&s->jmu, NULL);
  pthread_cond_init(&s->jcv, NULL);
  pthread_mutex_init(&s->kmu, NULL);
  pthread_cond_init(&s->kcv, NULL);
  const char *dq = getenv("MIQ_DEBUG_QUEUE");
  s->qdebug = dq && *dq && strcmp(dq, "0") != 0;
  s->jssched = -1;
  if (pthread_getcpuclockid(pthread_self(), &s->jsclock) != 0) s->jsclock = CLOCK_THREAD_CPUTIME_ID;
  s->scap = 48u << 20;
  const char *nv = getenv("MIQ_MOUNT_NOTIFY");
  s->qoff = nv && strcmp(nv, "0") == 0;
  const char *pp = getenv("MIQ_MOUNT_PUSH_PIN");
  s->qpinoff = pp && strcmp(pp, "0") == 0;
  atomic_store(&s->qcpu, -1);
  s->rcap = 64u << 20;
  s->se = fuse_session_new(&fa, &OPS, sizeof OPS, s);
  fuse_opt_free_args(&fa);
  if (!s->se) { free(s); napi_throw_error(env, "EINVAL", "miqfuse: bad FUSE options"); return NULL; }
  if (fuse_session_mount(s->se, mp) != 0) {
    fuse_session_destroy(s->se);
    free(s);
    napi_throw_error(env, "EMOUNT", "miqfuse: mount failed (is /dev/fuse there, and are we root?)");
    return NULL;
  }
  s->fd = fuse_session_fd(s->se);
  fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
  u_mount(s);
  s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  napi_value name;
  napi_create_string_utf8(env, "miqfuse", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, s, call_js, &s->tsfn) != napi_ok) {
    umount2(mp, MNT_DETACH);
    u_destroy(s);
    fuse_session_destroy(s->se);
    free(s);
    napi_throw_error(env, NULL, "miqfuse: cannot create the request queue");
    return NULL;
  }
  if (pthread_create(&s->thread, NULL, loop, s) != 0) {
    umount2(mp, MNT_DETACH);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    u_destroy(s);
    fuse_session_destroy(s->se);
    free(s);
    napi_throw_error(env, NULL, "miqfuse: cannot start the loop thread");
    return NULL;
  }
  s->thread_started = 1;
  if (s->qdebug) s->jssched = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  if (!s->qoff && pthread_create(&s->qthread, NULL, pusher, s) == 0) s->qstarted = 1;
  pthread_mutex_lock(&g_mu);
  for (int k = 1; k < GSESS; k++) if (!g_sess[k]) { g_sess[k] = s; s->handle = k + GSESS * (++g_made % (1 << 20)); break; }
  pthread_mutex_unlock(&g_mu);
  napi_value ext;
  NAPI(napi_create_external(env, s, NULL, NULL, &ext));
  return ext;
}

#define SESSION_ARGS(k) napi_value argv[k]; if (!get_args(env, info, k, argv)) return NULL; session_t *s = get_session(env, argv[0]); if (!s) return NULL;
/* Every reply: its arguments (session, slot, ...), then the request the slot holds (a slot is
 * taken once: a second reply to it is refused, never a use-after-free). Arguments that can be
 * refused are checked before the take, so a type error leaves the request to be answered. */
#define TAKE_REQ fuse_req_t r = take(env, s, argv[1]); if (!r) return NULL;
#define REQ_ARGS(k) SESSION_ARGS(k) TAKE_REQ

static bool buffer_arg(napi_env env, napi_value v, void **data, size_t *len) {
  if (napi_get_buffer_info(env, v, data, len) == napi_ok) return true;
  napi_throw_type_error(env, NULL, "miqfuse: not a buffer");
  return false;
}

static void fill_entry(struct fuse_entry_param *e, double ino, double mode, double size, double et, double at) {
  memset(e, 0, sizeof *e);
  e->ino = (fuse_ino_t)ino;
  fill_attr(&e->attr, ino, mode, size);
  e->entry_timeout = et;
  e->attr_timeout = at;
}

static napi_value ret_int(napi_env env, int v) { napi_value r; napi_create_int32(env, v, &r); return r; }

/* replyErr(s, slot, errno) */
static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  REQ_ARGS(3);
  return ret_int(env, fuse_reply_err(r, (int)num(env, argv[2])));
}

/* replyEntry(s, slot, ino, mode, size, entryTimeout, attrTimeout); ino 0 is a cacheable miss */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  REQ_ARGS(7);
  struct fuse_entry_param e;
  fill_entry(&e, num(env, argv[2]), num(env, argv[3]), num(env, argv[4]), num(env, argv[5]), num(env, argv[6]));
  int rc = fuse_reply_entry(r, &e);
  if (rc == 0 && e.ino && rhas(s, e.ino)) qpush(s, e.ino | QFRESH);
  return ret_int(env, rc);
}

/* replyAttr(s, slot, ino, mode, size, attrTimeout) */
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  REQ_ARGS(6);
  struct stat st;
  fill_attr(&st, num(env, argv[2]), num(env, argv[3]), num(env, argv[4]));
  return ret_int(env, fuse_reply_attr(r, &st, num(env, argv[5])));
}

/* replyBuf(s, slot, buffer, length) */
static napi_value js_reply_buf(napi_env env, napi_callback_info info) {
  SESSION_ARGS(4);
  void *data = NULL;
  size_t len = 0;
  if (!buffer_arg(env, argv[2], &data, &len)) return NULL;
  double want = num(env, argv[3]);
  if (want >= 0 && want < (double)len) len = (size_t)want;
  TAKE_REQ
  return ret_int(env, fuse_reply_buf(r, data, len));
}

/* replyBufs(s, slot, buffers[]): the data of a READ as it lies in several buffers (chunks), written
 * with one writev: no copy into one buffer first (measured: that copy, into fresh pages, and the
 * garbage it made were most of the serving thread's time on a large sequential read). */
static napi_value js_reply_bufs(napi_env env, napi_callback_info info) {
  SESSION_ARGS(3);
  uint32_t n = 0;
  NAPI(napi_get_array_length(env, argv[2], &n));
  if (n > 256) { napi_throw_range_error(env, NULL, "miqfuse: too many buffers"); return NULL; }
  struct iovec iov[256];
  for (uint32_t k = 0; k < n; k++) {
    napi_value e;
    napi_get_element(env, argv[2], k, &e);
    if (!buffer_arg(env, e, &iov[k].iov_base, &iov[k].iov_len)) return NULL;
  }
  TAKE_REQ
  return ret_int(env, fuse_reply_iov(r, iov, (int)n));
}

/* replyReadlink(s, slot, buffer) */
static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  SESSION_ARGS(3);
  void *data = NULL;
  size_t len = 0;
  if (!buffer_arg(env, argv[2], &data, &len)) return NULL;
  TAKE_REQ
  char *t = malloc(len + 1);
  memcpy(t, data, len);
  t[len] = 0;
  int rc = fuse_reply_readlink(r, t);
  free(t);
  return ret_int(env, rc);
}

/* replyXattrSize(s, slot, n) */
static napi_value js_reply_xattr(napi_env env, napi_callback_info info) {
  REQ_ARGS(3);
  return ret_int(env, fuse_reply_xattr(r, (size_t)num(env, argv[2])));
}

/* replyStatfs(s, slot, blocks, files) */
static napi_value js_reply_statfs(napi_env env, napi_callback_info info) {
  REQ_ARGS(4);
  struct statvfs v;
  memset(&v, 0, sizeof v);
  v.f_bsize = v.f_frsize = 4096;
  v.f_blocks = (fsblkcnt_t)num(env, argv[2]);
  v.f_files = (fsfilcnt_t)num(env, argv[3]);
  v.f_namemax = 255;
  return ret_int(env, fuse_reply_statfs(r, &v));
}

/*
 * replyDir(s, slot, plus, size, packed, count, firstOff, entryTimeout, attrTimeout) -> entries sent
 * packed: per entry f64 ino, f64 size, u32 mode, u32 name length, name bytes, padded to 8.
 * Entry k gets the offset firstOff + k + 1 (the kernel's cookie for "continue after it").
 * With plus, every entry sent counts as one lookup of its node: the caller adds exactly the
 * number returned.
 */
static napi_value js_reply_dir(napi_env env, napi_callback_info info) {
  SESSION_ARGS(9);
  bool plus = false;
  napi_get_value_bool(env, argv[2], &plus);
  size_t size = (size_t)num(env, argv[3]);
  uint8_t *p = NULL;
  size_t plen = 0;
  if (!buffer_arg(env, argv[4], (void **)&p, &plen)) return NULL;
  uint32_t count = (uint32_t)num(env, argv[5]);
  double first = num(env, argv[6]), et = num(env, argv[7]), at = num(env, argv[8]);
  TAKE_REQ
  char *buf = malloc(size ? size : 1);
  size_t used = 0, at_p = 0;
  uint32_t sent = 0;
  char name[1024];
  for (; sent < count && at_p + 24 <= plen; sent++) {
    double ino, fsize;
    uint32_t mode, nl;
    memcpy(&ino, p + at_p, 8);
    memcpy(&fsize, p + at_p + 8, 8);
    memcpy(&mode, p + at_p + 16, 4);
    memcpy(&nl, p + at_p + 20, 4);
    if (nl >= sizeof name || at_p + 24 + nl > plen) break;
    memcpy(name, p + at_p + 24, nl);
    name[nl] = 0;
    off_t off = (off_t)first + sent + 1;
    size_t need;
    if (plus) {
      struct fuse_entry_param e;
      fill_entry(&e, ino, mode, fsize, et, at);
      need = fuse_add_direntry_plus(r, buf + used, size - used, name, &e, off);
    } else {
      struct stat st;
      fill_attr(&st, ino, mode, fsize);
      need = fuse_add_direntry(r, buf + used, size - used, name, &st, off);
    }
    if (need > size - used) break;
    used += need;
    at_p += (24 + nl + 7) & ~(size_t)7;
  }
  fuse_reply_buf(r, buf, used);
  free(buf);
  return ret_int(env, (int)sent);
}

typedef struct inval {
  uint64_t ino; /* parent for an entry */
  size_t len;   /* 0: inode */
  char *name;
} inval_t;

typedef struct work {
  session_t *s;
  napi_async_work w;
  napi_ref cb;
  inval_t *items;
  size_t n;
  int failed;
  char **paths; /* unmount work */
  size_t npaths;
  char err[256];
} work_t;

static void inval_exec(napi_env env, void *data) {
  (void)env;
  work_t *w = data;
  for (size_t k = 0; k < w->n; k++) {
    inval_t *it = &w->items[k];
    int rc = it->len ? fuse_lowlevel_notify_inval_entry(w->s->se, it->ino, it->name, it->len)
                     : fuse_lowlevel_notify_inval_inode(w->s->se, it->ino, 0, 0);
    /* ENOENT: the kernel had nothing cached under that name or node, which is fine. */
    if (rc != 0 && rc != -ENOENT) w->failed++;
  }
}

static void work_done(napi_env env, napi_status status, void *data) {
  (void)status;
  work_t *w = data;
  atomic_fetch_sub(&w->s->works, 1);
  napi_value cb, undef, argv[2];
  napi_get_reference_value(env, w->cb, &cb);
  napi_get_undefined(env, &undef);
  napi_create_int32(env, w->failed, &argv[0]);
  napi_create_string_utf8(env, w->err, NAPI_AUTO_LENGTH, &argv[1]);
  napi_call_function(env, undef, cb, 2, argv, NULL);
  napi_delete_reference(env, w->cb);
  napi_delete_async_work(env, w->w);
  for (size_t k = 0; k < w->n; k++) free(w->items[k].name);
  free(w->items);
  for (size_t k = 0; k < w->npaths; k++) free(w->paths[k]);
  free(w->paths);
  free(w);
}

static work_t *new_work(napi_env env, session_t *s, napi_value cb) {
  work_t *w = calloc(1, sizeof *w);
  w->s = s;
  napi_create_reference(env, cb, 1, &w->cb);
  return w;
}

static void queue_work(napi_env env, work_t *w, napi_async_execute_callback exec, const char *what) {
  napi_value name;
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, exec, work_done, w, &w->w);
  atomic_fetch_add(&w->s->works, 1);
  napi_queue_async_work(env, w->w);
}

/* notifyInval(s, inos: number[], names: (Buffer|null)[], cb(failed)) — an entry (parent, name)
 * where a name is given, else the inode (its attributes, data and cached listing). */
static napi_value js_notify(napi_env env, napi_callback_info info) {
  SESSION_ARGS(4);
  uint32_t n = 0;
  NAPI(napi_get_array_length(env, argv[1], &n));
  work_t *w = new_work(env, s, argv[3]);
  w->items = calloc(n ? n : 1, sizeof(inval_t));
  w->n = n;
  for (uint32_t k = 0; k < n; k++) {
    napi_value e, nm;
    napi_get_element(env, argv[1], k, &e);
    w->items[k].ino = (uint64_t)num(env, e);
    napi_get_element(env, argv[2], k, &nm);
    bool isbuf = false;
    napi_is_buffer(env, nm, &isbuf);
    if (isbuf) {
      void *d; size_t l;
      napi_get_buffer_info(env, nm, &d, &l);
      w->items[k].name = malloc(l + 1);
      memcpy(w->items[k].name, d, l);
      w->items[k].name[l] = 0;
      w->items[k].len = l;
    }
  }
  queue_work(env, w, inval_exec, "miqfuse.notify");
  return NULL;
}

static void umount_exec(napi_env env, void *data) {
  (void)env;
  work_t *w = data;
  for (size_t k = 0; k < w->npaths; k++) {
    if (umount2(w->paths[k], MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
      w->failed++;
      snprintf(w->err, sizeof w->err, "%s: %s", w->paths[k], strerror(errno));
    }
  }
}

static void willneed_exec(napi_env env, void *data) {
  (void)env;
  work_t *w = data;
  for (size_t k = 0; k < w->npaths; k++) {
    int fd = open(w->paths[k], O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED) != 0) w->failed++;
    close(fd);
  }
}

/* Copies a JS array of path strings into a new work item and queues `exec` over them on the pool. */
static void queue_paths(napi_env env, session_t *s, napi_value arr, napi_value cb, napi_async_execute_callback exec, const char *what) {
  uint32_t n = 0;
  if (napi_get_array_length(env, arr, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "miqfuse: expected an array of paths");
    return;
  }
  work_t *w = new_work(env, s, cb);
  w->paths = calloc(n ? n : 1, sizeof(char *));
  w->npaths = n;
  for (uint32_t k = 0; k < n; k++) {
    napi_value e;
    char buf[4096];
    size_t l;
    napi_get_element(env, arr, k, &e);
    napi_get_value_string_utf8(env, e, buf, sizeof buf, &l);
    w->paths[k] = strdup(buf);
  }
  queue_work(env, w, exec, what);
}

/* willneed(s, paths[], cb(failed)): asks the kernel to read whole files into the page cache
 * (posix_fadvise WILLNEED), on the pool. */
static napi_value js_willneed(napi_env env, napi_callback_info info) {
  SESSION_ARGS(3);
  queue_paths(env, s, argv[1], argv[2], willneed_exec, "miqfuse.willneed");
  return NULL;
}

/* detach(s, paths[], cb(failed, message)): lazy unmounts on the pool (the mount syscall on our
 * own mount must not wait on the thread that answers it). */
static napi_value js_detach(napi_env env, napi_callback_info info) {
  SESSION_ARGS(3);
  queue_paths(env, s, argv[1], argv[2], umount_exec, "miqfuse.detach");
  return NULL;
}

/* With nmu held: the tables of registered names exist. */
static int ntables(session_t *s) {
  if (!s->nb) s->nb = calloc(NBUCKETS, sizeof(named_t *));
  if (!s->db) s->db = calloc(DBUCKETS, sizeof(dirl_t *));
  if (!s->lb) s->lb = calloc(LBUCKETS, sizeof(linkn_t *));
  return s->nb && s->db && s->lb;
}

/* With nmu held, `d` not registered yet (offs, packed, names and links made): its names and
 * symlinks go into the tables. */
static void dinsert(session_t *s, dirl_t *d, uint32_t nlinks) {
  uint64_t parent = d->ino;
  uint32_t count = d->count;
  for (uint32_t k = 0; k < count; k++) {
    named_t *n = &d->names[k];
    n->parent = parent; n->k = k; n->dir = d;
    memcpy(&n->len, d->packed + d->offs[k] + 20, 4);
    n->name = (const char *)d->packed + d->offs[k] + 24;
    uint32_t mode;
    memcpy(&mode, d->packed + d->offs[k] + 16, 4);
    double size;
    memcpy(&size, d->packed + d->offs[k] + 8, 8);
    /* As counted above (a symlink with an empty target has no record: JS answers it). */
    if (S_ISLNK(mode) && size > 0 && d->nlinks < nlinks) {
      double ino;
      memcpy(&ino, d->packed + d->offs[k], 8);
      linkn_t *l = &d->links[d->nlinks++];
      l->ino = (uint64_t)ino; l->len = (uint32_t)size; l->dir = d;
      l->target = n->name + n->len;
      linkn_t **lp = &s->lb[l->ino & (LBUCKETS - 1)];
      while (*lp && (*lp)->ino != l->ino) lp = &(*lp)->hnext;
      if (*lp) l->dir = NULL; /* the node is another directory's already: that one stays */
      else { l->hnext = NULL; *lp = l; }
    }
    named_t **pp = nfind(s, parent, n->name, n->len);
    if (*pp) { n->dir = NULL; continue; } /* a name twice: the first stays */
    *pp = n;
  }
  d->hnext = NULL;
  *dfind(s, parent) = d;
  s->nnames += count; s->ndirs++; s->nbytes += d->plen + count * (sizeof(named_t) + sizeof(uint32_t)) + sizeof *d;
}

/* names(s, parent, packed, count, timeout): registers the listing of immutable directory
 * `parent` (packed as for replyDir, except that a symlink's record also holds its target, `size`
 * bytes, after its name); its LOOKUPs (hits and misses), READDIR(PLUS)es and its symlinks'
 * READLINKs are answered here from now on, until unnames. Returns false when it was registered
 * already (or on a malformed listing). */
static napi_value js_names(napi_env env, napi_callback_info info) {
  SESSION_ARGS(5);
  uint64_t parent = (uint64_t)num(env, argv[1]);
  uint8_t *p = NULL;
  size_t plen = 0;
  if (!buffer_arg(env, argv[2], (void **)&p, &plen)) return NULL;
  uint32_t count = (uint32_t)num(env, argv[3]);
  double timeout = num(env, argv[4]);
  napi_value res;
  dirl_t *d = calloc(1, sizeof *d);
  if (d) {
    d->packed = malloc(plen ? plen : 1);
    d->offs = malloc((count ? count : 1) * sizeof *d->offs);
    d->names = calloc(count ? count : 1, sizeof *d->names);
  }
  if (!d || !d->packed || !d->offs || !d->names) {
    if (d) { free(d->packed); free(d->offs); free(d->names); free(d); }
    napi_get_boolean(env, false, &res);
    return res;
  }
  memcpy(d->packed, p, plen);
  d->plen = plen; d->ino = parent; d->count = count; d->timeout = timeout;
  size_t at = 0;
  uint32_t k = 0;
  uint32_t nlinks = 0;
  for (; k < count && at + 24 <= plen; k++) {
    uint32_t nl, mode;
    double size;
    memcpy(&nl, d->packed + at + 20, 4);
    memcpy(&mode, d->packed + at + 16, 4);
    memcpy(&size, d->packed + at + 8, 8);
    size_t tl = S_ISLNK(mode) ? (size >= 0 && size <= 65535 ? (size_t)size : plen + 1) : 0;
    if (at + 24 + nl + tl > plen) break;
    d->offs[k] = (uint32_t)at;
    if (tl) nlinks++;
    at += (24 + nl + tl + 7) & ~(size_t)7;
  }
  int ok = k == count;
  if (ok && nlinks && !(d->links = calloc(nlinks, sizeof *d->links))) ok = 0;
  pthread_mutex_lock(&s->nmu);
  if (ok && ntables(s) && !*dfind(s, parent)) dinsert(s, d, nlinks);
  else ok = 0;
  pthread_mutex_unlock(&s->nmu);
  if (!ok) { free(d->packed); free(d->offs); free(d->names); free(d->links); free(d); }
  napi_get_boolean(env, ok, &res);
  return res;
}

/* attrs(s, ino, mode, size, timeout): node `ino`'s attributes never change (a directory outside
 * the file nodes: the root); its GETATTRs are answered here from now on. False when the table is
 * full or the node is a file node. */
static napi_value js_attrs(napi_env env, napi_callback_info info) {
  SESSION_ARGS(5);
  uint64_t ino = (uint64_t)num(env, argv[1]);
  int ok = 0;
  pthread_mutex_lock(&s->nmu);
  if (ino < FBASE && s->nfixed < (int)(sizeof s->fixed / sizeof s->fixed[0])) {
    int k = 0;
    while (k < s->nfixed && s->fixed[k].ino != ino) k++;
    s->fixed[k].ino = ino;
    s->fixed[k].mode = (uint32_t)num(env, argv[2]);
    s->fixed[k].size = num(env, argv[3]);
    s->fixed[k].timeout = num(env, argv[4]);
    if (k == s->nfixed) s->nfixed++;
    ok = 1;
  }
  pthread_mutex_unlock(&s->nmu);
  napi_value res;
  napi_get_boolean(env, ok, &res);
  return res;
}

/* With nmu held: unlinks and frees a registered directory. */
static void dfree(session_t *s, dirl_t **dp) {
  dirl_t *d = *dp;
  *dp = d->hnext;
  for (uint32_t k = 0; k < d->count; k++) {
    named_t *n = &d->names[k];
    if (n->dir != d) continue;
    named_t **pp = &s->nb[nhash(n->parent, n->name, n->len)];
    while (*pp && *pp != n) pp = &(*pp)->hnext;
    if (*pp) *pp = n->hnext;
  }
  for (uint32_t k = 0; k < d->nlinks; k++) {
    linkn_t *l = &d->links[k];
    if (l->dir != d) continue;
    linkn_t **lp = &s->lb[l->ino & (LBUCKETS - 1)];
    while (*lp && *lp != l) lp = &(*lp)->hnext;
    if (*lp) *lp = l->hnext;
  }
  s->nnames -= d->count; s->ndirs--; s->nbytes -= d->plen + d->count * (sizeof(named_t) + sizeof(uint32_t)) + sizeof *d;
  if (d->fn) {
    s->nbytes -= d->count * sizeof *d->fn;
    for (uint32_t k = 0; k < d->count; k++) {
      fnode_t *f = d->fn[k];
      if (!f) continue;
      if (f->kept) f->kept--;
      fmaybe_free(s, f);
    }
  }
  free(d->packed); free(d->offs); free(d->names); free(d->links); free(d->fn); free(d);
}

/* namesTree(s, parent, tree, timeout, inos): registers directory `parent`'s listing as names
 * does, from the tree's own encoding (store/objects.ts: magic, u32 count, per entry kind u8 (1
 * file, 2 exe, 3 symlink, 4 dir), u16 name length, name, u64 size, then a 32-byte id, or for a
 * symlink a u16 length and the target; big-endian; checked against its id when it was loaded).
 * `inos` (a Float64Array, one per entry) holds the node ids JS chose for the directories and
 * symlinks; each file's is this table's (made if new, held by the listing while it is
 * registered) and is written there. Returns false when it was registered already (or on a
 * malformed tree: JS then answers the directory itself). */
static napi_value js_names_tree(napi_env env, napi_callback_info info) {
  SESSION_ARGS(5);
  uint64_t parent = (uint64_t)num(env, argv[1]);
  uint8_t *t = NULL;
  size_t tlen = 0;
  if (!buffer_arg(env, argv[2], (void **)&t, &tlen)) return NULL;
  double timeout = num(env, argv[3]);
  napi_typedarray_type tt;
  size_t ilen = 0;
  void *idata = NULL;
  napi_value res;
  if (napi_get_typedarray_info(env, argv[4], &tt, &ilen, &idata, NULL, NULL) != napi_ok || tt != napi_float64_array) {
    napi_throw_type_error(env, NULL, "miqfuse: inos is not a Float64Array");
    return NULL;
  }
  double *inos = idata;
  int ok = tlen >= 12;
  uint32_t count = ok ? ((uint32_t)t[8] << 24 | (uint32_t)t[9] << 16 | (uint32_t)t[10] << 8 | t[11]) : 0;
  if (ok && (count != ilen || count > (tlen - 12) / 12)) ok = 0;
  /* First pass: the packed size and the symlinks. */
  size_t at = 12, plen = 0;
  uint32_t nlinks = 0;
  for (uint32_t k = 0; ok && k < count; k++) {
    if (at + 3 > tlen) { ok = 0; break; }
    uint8_t kind = t[at];
    size_t nl = (size_t)t[at + 1] << 8 | t[at + 2];
    size_t o = at + 3 + nl + 8;
    size_t tl = 0;
    if (kind == 3) {
      if (o + 2 > tlen) { ok = 0; break; }
      tl = (size_t)t[o] << 8 | t[o + 1];
      o += 2 + tl;
      if (tl) nlinks++;
    } else if (kind >= 1 && kind <= 4) o += 32;
    else { ok = 0; break; }
    if (o > tlen) { ok = 0; break; }
    plen += (24 + nl + tl + 7) & ~(size_t)7;
    at = o;
  }
  if (ok && at != tlen) ok = 0;
  dirl_t *d = ok ? calloc(1, sizeof *d) : NULL;
  if (d) {
    d->packed = calloc(1, plen ? plen : 1);
    d->offs = malloc((count ? count : 1) * sizeof *d->offs);
    d->names = calloc(count ? count : 1, sizeof *d->names);
    d->fn = calloc(count ? count : 1, sizeof *d->fn);
    if (nlinks) d->links = calloc(nlinks, sizeof *d->links);
  }
  if (!d || !d->packed || !d->offs || !d->names || !d->fn || (nlinks && !d->links)) {
    if (d) { free(d->packed); free(d->offs); free(d->names); free(d->fn); free(d->links); free(d); }
    napi_get_boolean(env, false, &res);
    return res;
  }
  d->plen = plen; d->ino = parent; d->count = count; d->timeout = timeout;
  /* Second pass: the listing as replyDir reads it (files' node ids filled in under the lock). */
  at = 12;
  size_t pa = 0;
  for (uint32_t k = 0; k < count; k++) {
    uint8_t kind = t[at];
    size_t nl = (size_t)t[at + 1] << 8 | t[at + 2];
    const uint8_t *name = t + at + 3;
    const uint8_t *sz = name + nl;
    uint64_t size64 = 0;
    for (int j = 0; j < 8; j++) size64 = size64 << 8 | sz[j];
    size_t o = at + 3 + nl + 8;
    size_t tl = 0;
    const uint8_t *target = NULL;
    if (kind == 3) { tl = (size_t)t[o] << 8 | t[o + 1]; target = t + o + 2; o += 2 + tl; } else o += 32;
    uint8_t *p = d->packed + pa;
    double ino = kind == 1 || kind == 2 ? 0 : inos[k];
    double size = kind == 4 ? 4096 : kind == 3 ? (double)tl : (double)size64;
    uint32_t mode = kind == 4 ? 040555 : kind == 3 ? 0120777 : kind == 2 ? 0100555 : 0100444;
    uint32_t nl32 = (uint32_t)nl;
    memcpy(p, &ino, 8); memcpy(p + 8, &size, 8); memcpy(p + 16, &mode, 4); memcpy(p + 20, &nl32, 4);
    memcpy(p + 24, name, nl);
    if (tl) memcpy(p + 24 + nl, target, tl);
    d->offs[k] = (uint32_t)pa;
    pa += (24 + nl + tl + 7) & ~(size_t)7;
    at = o;
  }
  pthread_mutex_lock(&s->nmu);
  ok = ntables(s) && !*dfind(s, parent);
  if (ok) {
    at = 12;
    for (uint32_t k = 0; k < count; k++) {
      uint8_t kind = t[at];
      size_t nl = (size_t)t[at + 1] << 8 | t[at + 2];
      size_t o = at + 3 + nl + 8;
      if (kind == 3) o += 2 + ((size_t)t[o] << 8 | t[o + 1]);
      else {
        if (kind != 4) {
          double size;
          memcpy(&size, d->packed + d->offs[k] + 8, 8);
          fnode_t *f = fget(s, t + o, kind == 2, size, parent, k);
          if (!f) { ok = 0; break; }
          f->kept++;
          d->fn[k] = f;
          double ino = (double)f->ino;
          memcpy(d->packed + d->offs[k], &ino, 8);
          inos[k] = ino;
        }
        o += 32;
      }
      at = o;
    }
    if (ok) {
      dinsert(s, d, nlinks);
      s->nbytes += count * sizeof *d->fn;
    } else {
      for (uint32_t k = 0; k < count; k++) if (d->fn[k]) { d->fn[k]->kept--; fmaybe_free(s, d->fn[k]); }
    }
  }
  pthread_mutex_unlock(&s->nmu);
  if (!ok) { free(d->packed); free(d->offs); free(d->names); free(d->fn); free(d->links); free(d); }
  napi_get_boolean(env, ok, &res);
  return res;
}

/* fileIno(s, id, exe, size, count): the node id of file content `id` (64 hex digits) with or
 * without the exec bit; count > 0: made if new and its lookup count raised by `count` (JS
 * answers a LOOKUP or READDIRPLUS with it); count 0: 0 when there is none. JS may keep an
 * object for it: OP_FREED tells it when the node goes. */
static napi_value js_file_ino(napi_env env, napi_callback_info info) {
  SESSION_ARGS(5);
  char hex[65];
  size_t n = 0;
  napi_value res;
  uint8_t id[32];
  int ok = napi_get_value_string_latin1(env, argv[1], hex, sizeof hex, &n) == napi_ok && n == 64;
  for (int k = 0; ok && k < 32; k++) {
    int hi = hexval(hex[2 * k]), lo = hexval(hex[2 * k + 1]);
    if (hi < 0 || lo < 0) ok = 0;
    else id[k] = (uint8_t)(hi << 4 | lo);
  }
  if (!ok) { napi_throw_type_error(env, NULL, "miqfuse: not a file id"); return NULL; }
  bool exe = false;
  napi_get_value_bool(env, argv[2], &exe);
  double size = num(env, argv[3]);
  uint64_t count = (uint64_t)num(env, argv[4]);
  uint64_t ino = 0;
  pthread_mutex_lock(&s->nmu);
  fnode_t *f = count ? fget(s, id, exe, size, 0, 0) : fbyid(s, id, exe);
  if (f) {
    f->nlookup += count;
    f->js = 1;
    ino = f->ino;
  }
  pthread_mutex_unlock(&s->nmu);
  napi_create_double(env, (double)ino, &res);
  return res;
}

/* fileNode(s, ino) -> [id (hex), exe, size, parent, index] of a file node of this table (parent
 * and index: where it was first listed; parent 0 when JS made it), or null. JS may keep an object
 * for it from now on (OP_FREED). */
static napi_value js_file_node(napi_env env, napi_callback_info info) {
  SESSION_ARGS(2);
  uint64_t ino = (uint64_t)num(env, argv[1]);
  char hex[64];
  static const char *digits = "0123456789abcdef";
  int hit = 0;
  fnode_t c;
  pthread_mutex_lock(&s->nmu);
  fnode_t *f = fbyino(s, ino);
  if (f) { f->js = 1; c = *f; hit = 1; }
  pthread_mutex_unlock(&s->nmu);
  napi_value res, v;
  if (!hit) { napi_get_null(env, &res); return res; }
  for (int k = 0; k < 32; k++) { hex[2 * k] = digits[c.id[k] >> 4]; hex[2 * k + 1] = digits[c.id[k] & 15]; }
  napi_create_array_with_length(env, 5, &res);
  napi_create_string_latin1(env, hex, 64, &v); napi_set_element(env, res, 0, v);
  napi_get_boolean(env, c.exe, &v); napi_set_element(env, res, 1, v);
  napi_create_double(env, c.size, &v); napi_set_element(env, res, 2, v);
  napi_create_double(env, (double)c.parent, &v); napi_set_element(env, res, 3, v);
  napi_create_double(env, c.index, &v); napi_set_element(env, res, 4, v);
  return res;
}

/* fileForget(s, ino, n): lowers a file node's lookup count (a reply JS made with it did not
 * reach the kernel). */
static napi_value js_file_forget(napi_env env, napi_callback_info info) {
  SESSION_ARGS(3);
  fforget(s, (uint64_t)num(env, argv[1]), (uint64_t)num(env, argv[2]));
  return NULL;
}

/* unnames(s, parent): drops a directory's registration; OP_UNNAMED(parent) follows every
 * OP_LOOKED / OP_LISTED answered from it. */
static napi_value js_unnames(napi_env env, napi_callback_info info) {
  SESSION_ARGS(2);
  uint64_t parent = (uint64_t)num(env, argv[1]);
  pthread_mutex_lock(&s->nmu);
  dirl_t **dp = s->db ? dfind(s, parent) : NULL;
  int had = dp && *dp;
  if (had) dfree(s, dp);
  pthread_mutex_unlock(&s->nmu);
  if (had) notice(s, OP_UNNAMED, parent, 0, 0);
  napi_value res;
  napi_get_boolean(env, had, &res);
  return res;
}

static session_t *suse(int h);

/* Copies `len` verified bytes of file node `ino` into the table of offered files (any thread);
 * false when they do not fit. */
static int roffer(session_t *s, uint64_t ino, const void *data, size_t len, int push) {
  if (ino == 0 || len > s->rcap / 4) return 0;
  ready_t *r = malloc(sizeof *r + (len ? len : 1));
  if (!r) return 0;
  r->ino = ino;
  r->len = len;
  r->served = 0;
  memcpy(r->data, data, len);
  pthread_mutex_lock(&s->rmu);
  ready_t **pp = rfind(s, ino);
  if (*pp) rdrop(s, pp);
  r->hnext = s->rb[ino % RBUCKETS];
  s->rb[ino % RBUCKETS] = r;
  r->next = NULL;
  r->prev = s->rtail;
  if (s->rtail) s->rtail->next = r; else s->rhead = r;
  s->rtail = r;
  s->rbytes += len;
  while (s->rbytes > s->rcap && s->rhead && s->rhead != r) rdrop(s, rfind(s, s->rhead->ino));
  pthread_mutex_unlock(&s->rmu);
  atomic_fetch_add(&s->roffered, 1);
  cunpend(s, ino, 2);
  if (push) qpush(s, ino);
  return 1;
}

/* offer(s, ino, buffer, push): the whole, verified content of file node `ino`; its READs are
 * answered here from now on (see the head comment). A copy is kept: the buffer may be reused.
 * push: the kernel knows the node already, so push the bytes into its page cache now. */
static napi_value js_offer(napi_env env, napi_callback_info info) {
  SESSION_ARGS(4);
  bool push = false;
  napi_get_value_bool(env, argv[3], &push);
  void *data = NULL;
  size_t len = 0;
  if (!buffer_arg(env, argv[2], &data, &len)) return NULL;
  roffer(s, (uint64_t)num(env, argv[1]), data, len, push);
  return NULL;
}

/* pushOffered(s, ino): the node's offered bytes (if still there) go into the page cache (a node
 * the kernel knows: looked up); from JS once a decode thread offered them (readyOffer). */
static napi_value js_push_offered(napi_env env, napi_callback_info info) {
  SESSION_ARGS(2);
  uint64_t ino = (uint64_t)num(env, argv[1]);
  if (ino && rhas(s, ino)) qpush(s, ino);
  return NULL;
}

/* serveOffered(s, slot, ino, size, off) -> bool: a READ that reached JS, answered from the
 * node's offered bytes; false (the slot still JS's) when the node has none. */
static napi_value js_serve_offered(napi_env env, napi_callback_info info) {
  SESSION_ARGS(5);
  napi_value res;
  napi_get_boolean(env, false, &res);
  uint64_t ino = (uint64_t)num(env, argv[2]);
  double size = num(env, argv[3]), off = num(env, argv[4]);
  if (s->dropping || !(off >= 0) || !(size >= 0) || !rhas(s, ino)) return res;
  fuse_req_t r = slot_take(s, num(env, argv[1]));
  if (!r) return res;
  if (!rserve(s, r, ino, (size_t)size, (off_t)off)) {
    /* Gone meanwhile (pushed, or pushed out): back into its slot, as streamWait does. */
    slot_untake(s, num(env, argv[1]), r);
    return res;
  }
  napi_get_boolean(env, true, &res);
  return res;
}

/* readyOffer(handle, ino, bytes) -> bool: from a decode thread, the whole content of small file
 * node `ino`, checked against its id by the caller; copied into the table of offered files (its
 * READs are answered by the loop thread, as after offer). False when the session is gone or the
 * bytes do not fit: the caller returns them to JS. */
static napi_value js_ready_offer(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  int h = (int)num(env, argv[0]);
  uint64_t ino = (uint64_t)num(env, argv[1]);
  void *data = NULL;
  size_t len = 0;
  if (!buffer_arg(env, argv[2], &data, &len)) return NULL;
  napi_value res;
  napi_get_boolean(env, false, &res);
  if (h <= 0 || len == 0) return res;
  session_t *s = suse(h);
  if (!s) return res;
  int ok = !s->dropping && roffer(s, ino, data, len, 0);
  if (ok) atomic_fetch_add(&s->rthreads, 1);
  atomic_fetch_sub(&s->users, 1);
  napi_get_boolean(env, ok, &res);
  return res;
}

/* streamHandle(s) -> the number decode threads name this session by in chunkOffer. */
static napi_value js_stream_handle(napi_env env, napi_callback_info info) {
  SESSION_ARGS(1);
  return ret_int(env, s->handle);
}

/* streamPromise(s, ino, size, off, end[, low]): a decode thread will offer bytes [off, end) of
 * file node `ino` (`size` bytes long); READs of them wait here until it does or JS settles the
 * promise. `low` (default 0): JS hears of READs answered here only when fewer bytes than that
 * past them are offered or promised (sshort). */
static napi_value js_stream_promise(napi_env env, napi_callback_info info) {
  SESSION_ARGS(5);
  uint64_t ino = (uint64_t)num(env, argv[1]), size = (uint64_t)num(env, argv[2]);
  uint64_t off = (uint64_t)num(env, argv[3]), end = (uint64_t)num(env, argv[4]);
  size_t argc6 = 6;
  napi_value a6[6];
  napi_get_cb_info(env, info, &argc6, a6, NULL, NULL);
  double lowd = argc6 >= 6 ? num(env, a6[5]) : 0;
  uint64_t low = lowd > 0 ? (uint64_t)lowd : 0;
  if (ino == 0 || end <= off || s->dropping) return NULL;
  prom_t *p = malloc(sizeof *p);
  if (!p) return NULL;
  p->off = off; p->end = end;
  pthread_mutex_lock(&s->smu);
  stream_t **pp = sfind(s, ino);
  if (!*pp) {
    stream_t *st = calloc(1, sizeof *st);
    if (!st) { pthread_mutex_unlock(&s->smu); free(p); return NULL; }
    st->ino = ino;
    *pp = st;
  }
  (*pp)->size = size;
  (*pp)->low = low;
  p->next = (*pp)->proms;
  (*pp)->proms = p;
  pthread_mutex_unlock(&s->smu);
  return NULL;
}

/* streamSettle(s, ino, off, end[, bytes]): the chunk at [off, end) was decoded (offered or not)
 * or failed: its promise ends, and READs that were waiting for it and cannot be answered go to
 * JS. With `bytes` (decoded on the JS thread) they are copied in first, like an offer. */
static napi_value js_stream_settle(napi_env env, napi_callback_info info) {
  SESSION_ARGS(4);
  uint64_t ino = (uint64_t)num(env, argv[1]), off = (uint64_t)num(env, argv[2]), end = (uint64_t)num(env, argv[3]);
  sout_t o = { .n = 0 };
  /* With the bytes (decoded on this thread, verified): into the stream like an offer. */
  size_t argc = 5;
  napi_value a5[5];
  napi_get_cb_info(env, info, &argc, a5, NULL, NULL);
  void *data = NULL;
  size_t len = 0;
  if (argc >= 5 && napi_get_buffer_info(env, a5[4], &data, &len) == napi_ok && len == end - off && len > 0) sinsert(s, ino, off, data, len, &o);
  pthread_mutex_lock(&s->smu);
  stream_t *st = *sfind(s, ino);
  if (st) {
    for (prom_t **pp = &st->proms; *pp;) {
      prom_t *p = *pp;
      if (p->off >= off && p->end <= end) { *pp = p->next; free(p); }
      else pp = &p->next;
    }
    srevisit(s, st, &o);
  }
  pthread_mutex_unlock(&s->smu);
  sout_post(s, &o);
  return NULL;
}

/* Copies bytes [off, off + len) of node `ino` into its stream (any thread, smu not held);
 * false when nothing streams that node (any more). */
static int sinsert(session_t *s, uint64_t ino, uint64_t off, const void *data, size_t len, sout_t *o) {
  size_t cap = 0;
  pthread_mutex_lock(&s->smu);
  stream_t *st0 = *sfind(s, ino);
  seg_t *have = NULL;
  for (seg_t *g = st0 ? st0->segs : NULL; g && g->off <= off; g = g->next) if (g->off == off) have = g;
  char *b = st0 && !have ? sblock(s, len, &cap) : NULL;
  pthread_mutex_unlock(&s->smu);
  if (have) return 1;
  if (!b) return 0;
  memcpy(b, data, len);
  return sadopt(s, ino, off, b, cap, len, o);
}

/* Puts block b (`cap` bytes from sblock; its first `len` hold bytes [off, off + len) of node
 * `ino`, verified) into the node's stream (smu not held); the block is the table's from then on,
 * kept or back on the free list. False when nothing streams that node (any more). */
static int sadopt(session_t *s, uint64_t ino, uint64_t off, char *b, size_t cap, size_t len, sout_t *o) {
  seg_t *g = malloc(sizeof *g);
  if (!g) { pthread_mutex_lock(&s->smu); sunblock(s, b, cap); pthread_mutex_unlock(&s->smu); return 0; }
  g->off = off; g->len = len; g->served = 0; g->cap = cap; g->data = b;
  int ok = 0;
  pthread_mutex_lock(&s->smu);
  stream_t *st = *sfind(s, ino);
  seg_t **pp = st ? &st->segs : NULL;
  while (pp && *pp && (*pp)->off < off) pp = &(*pp)->next;
  if (!st || (*pp && (*pp)->off == off)) {
    sunblock(s, b, cap);
    free(g);
    ok = st != NULL;
  } else {
    g->st = st;
    g->next = *pp;
    *pp = g;
    g->anext = NULL;
    g->aprev = s->stail;
    if (s->stail) s->stail->anext = g; else s->shead = g;
    s->stail = g;
    s->sbytes += len;
    for (prom_t **qq = &st->proms; *qq;) {
      prom_t *q = *qq;
      if (q->off >= off && q->end <= off + len) { *qq = q->next; free(q); }
      else qq = &q->next;
    }
    while (s->sbytes > s->scap && s->shead && s->shead != g) {
      stream_t *old = s->shead->st;
      sunseg(s, s->shead);
      if (old != st) srevisit(s, old, o);
    }
    srevisit(s, st, o);
    atomic_fetch_add(&s->soffered, 1);
    ok = 1;
  }
  pthread_mutex_unlock(&s->smu);
  return ok;
}

/* The session a decode thread names by handle `h`, held (users) until the caller drops it. */
static session_t *suse(int h) {
  pthread_mutex_lock(&g_mu);
  session_t *s = g_sess[h % GSESS];
  if (s && s->handle != h) s = NULL;
  if (s) atomic_fetch_add(&s->users, 1);
  pthread_mutex_unlock(&g_mu);
  return s;
}

/* chunkOffer(handle, ino, off, bytes) -> bool: from a decode thread, bytes [off, off + len) of
 * file node `ino`, checked against their id by the caller; copied. False when nothing streams
 * that node (any more): the caller returns the bytes to JS. */
static napi_value js_chunk_offer(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  int h = (int)num(env, argv[0]);
  uint64_t ino = (uint64_t)num(env, argv[1]), off = (uint64_t)num(env, argv[2]);
  void *data = NULL;
  size_t len = 0;
  if (!buffer_arg(env, argv[3], &data, &len)) return NULL;
  napi_value res;
  napi_get_boolean(env, false, &res);
  if (h <= 0 || len == 0) return res;
  session_t *s = suse(h);
  if (!s) return res;
  sout_t o = { .n = 0 };
  int ok = sinsert(s, ino, off, data, len, &o);
  sout_post(s, &o);
  atomic_fetch_sub(&s->users, 1);
  napi_get_boolean(env, ok, &res);
  return res;
}

/* streamWait(s, slot, ino, size, off) -> bool: a READ that reached JS, answered from the stream
 * or left waiting there for its promised chunks; false (the slot still JS's) when neither can
 * be. */
static napi_value js_stream_wait(napi_env env, napi_callback_info info) {
  SESSION_ARGS(5);
  napi_value res;
  napi_get_boolean(env, false, &res);
  uint64_t ino = (uint64_t)num(env, argv[2]);
  double size = num(env, argv[3]), off = num(env, argv[4]);
  if (s->dropping || !(off >= 0) || !(size >= 0)) return res;
  fuse_req_t r = slot_take(s, num(env, argv[1]));
  if (!r) return res;
  int done = 0;
  pthread_mutex_lock(&s->smu);
  stream_t *st = *sfind(s, ino);
  if (st) {
    int waitable;
    done = stry(s, st, r, (uint64_t)off, (size_t)size, &waitable);
    if (!done && waitable && spark(s, st, r, (uint64_t)off, (size_t)size)) done = 2;
  }
  pthread_mutex_unlock(&s->smu);
  if (!done) {
    slot_untake(s, num(env, argv[1]), r);
    return res;
  }
  napi_get_boolean(env, true, &res);
  return res;
}

/* stop(s): ends the loop; the connection is aborted once it has. */
static napi_value js_stop(napi_env env, napi_callback_info info) {
  SESSION_ARGS(1);
  uint64_t one = 1;
  atomic_store(&s->stopping, 1);
  if (write(s->evfd, &one, sizeof one) < 0) { /* a full counter is a stop already */ }
  return NULL;
}

/* drop(s): answer every unanswered request (and every one still queued) with EIO. */
static napi_value js_drop(napi_env env, napi_callback_info info) {
  SESSION_ARGS(1);
  s->dropping = 1;
  pthread_mutex_lock(&s->smu);
  for (int b = 0; b < SBUCKETS; b++) while (s->sb[b]) sdrop(s, &s->sb[b], NULL, 1);
  pthread_mutex_unlock(&s->smu);
  /* READs queued for the read threads (one a thread is working on is answered by it). */
  pthread_mutex_lock(&s->jmu);
  while (s->jhead) {
    cjob_t *j = s->jhead;
    s->jhead = j->next;
    fuse_reply_err(j->req, EIO);
    free(j);
    atomic_fetch_sub(&s->cjobs, 1);
  }
  s->jtail = NULL;
  pthread_mutex_unlock(&s->jmu);
  /* READs held for pending maps (s->dropping: presume answers them EIO). */
  for (size_t b = 0; s->pb && b < PBUCKETS; b++) {
    for (;;) {
      pthread_mutex_lock(&s->cmu);
      uint64_t ino = s->pb[b] ? s->pb[b]->ino : 0;
      park_t *k = s->pb[b] ? punlink(s, &s->pb[b]) : NULL;
      int more = s->pb[b] != NULL;
      pthread_mutex_unlock(&s->cmu);
      presume(s, ino, k, 0);
      if (!more) break;
    }
  }
  for (uint32_t i = 0; i < s->nslots; i++) {
    if (s->slots[i]) {
      fuse_reply_err(s->slots[i], EIO);
      s->slots[i] = NULL;
      s->free_list[s->nfree++] = i;
      s->used--;
    }
  }
  return NULL;
}

/* state(s) -> { ended, pending, counters..., maxWrite, want } */
static napi_value js_state(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  session_t *s = NULL;
  napi_get_value_external(env, argv[0], (void **)&s);
  napi_value o, v;
  napi_create_object(env, &o);
  napi_get_boolean(env, s->destroyed, &v); napi_set_named_property(env, o, "destroyed", v);
  if (s->destroyed) return o;
  napi_get_boolean(env, s->ended, &v); napi_set_named_property(env, o, "ended", v);
  napi_create_int32(env, atomic_load(&s->queued) + (int)s->used + atomic_load(&s->works) + atomic_load(&s->nparked) + atomic_load(&s->cparkn), &v); napi_set_named_property(env, o, "pending", v);
  napi_create_uint32(env, s->max_write, &v); napi_set_named_property(env, o, "maxWrite", v);
  napi_create_uint32(env, s->max_readahead, &v); napi_set_named_property(env, o, "maxReadahead", v);
  napi_create_uint32(env, s->want, &v); napi_set_named_property(env, o, "want", v);
  static const char *names[OP_COUNT] = { 0, "lookup", "forget", "getattr", "readlink", "read", "readdirplus", "readdir", "statfs", "getxattr", "listxattr", "end", "looked", "listed", "unlisted", "unnamed", "streamed", "freed", "batches" };
  napi_value c;
  napi_create_object(env, &c);
  for (int k = 1; k < OP_COUNT; k++) {
    napi_create_double(env, (double)atomic_load(&s->counts[k]), &v);
    napi_set_named_property(env, c, names[k], v);
  }
  napi_create_double(env, (double)atomic_load(&s->rserved), &v); napi_set_named_property(env, c, "readServed", v);
  napi_create_double(env, (double)atomic_load(&s->roffered), &v); napi_set_named_property(env, c, "offered", v);
  napi_create_double(env, (double)atomic_load(&s->rthreads), &v); napi_set_named_property(env, c, "offeredByThreads", v);
  napi_create_double(env, (double)atomic_load(&s->nserved), &v); napi_set_named_property(env, c, "lookupServed", v);
  napi_create_double(env, (double)atomic_load(&s->nmissed), &v); napi_set_named_property(env, c, "missServed", v);
  napi_create_double(env, (double)atomic_load(&s->lserved), &v); napi_set_named_property(env, c, "readlinkServed", v);
  napi_create_double(env, (double)atomic_load(&s->dserved), &v); napi_set_named_property(env, c, "readdirServed", v);
  /* The loop thread's spin (MIQ_MOUNT_SPIN_US): its setting, and requests taken while spinning. */
  napi_create_double(env, (double)s->spin, &v); napi_set_named_property(env, o, "spinUs", v);
  napi_create_double(env, (double)atomic_load(&s->spun), &v); napi_set_named_property(env, c, "spun", v);
  /* Requests taken from io_uring queues (MIQ_MOUNT_URING; 0 on the classic path). */
  napi_create_double(env, s->u ? (double)atomic_load(&s->u->served) : 0, &v); napi_set_named_property(env, c, "uringServed", v);
  pthread_mutex_lock(&s->nmu);
  napi_create_double(env, (double)s->nnames, &v); napi_set_named_property(env, o, "names", v);
  napi_create_double(env, (double)s->ndirs, &v); napi_set_named_property(env, o, "dirs", v);
  napi_create_double(env, (double)s->nbytes, &v); napi_set_named_property(env, o, "namesBytes", v);
  /* File nodes (namesTree): held now; made, freed and GETATTRs answered since the mount. */
  napi_create_double(env, (double)s->fcount, &v); napi_set_named_property(env, o, "fileNodes", v);
  pthread_mutex_unlock(&s->nmu);
  napi_create_double(env, (double)atomic_load(&s->fmade), &v); napi_set_named_property(env, c, "fileMade", v);
  napi_create_double(env, (double)atomic_load(&s->ffreed), &v); napi_set_named_property(env, c, "fileFreed", v);
  napi_create_double(env, (double)atomic_load(&s->fattr), &v); napi_set_named_property(env, c, "fileAttrServed", v);
  napi_create_double(env, (double)atomic_load(&s->dattr), &v); napi_set_named_property(env, c, "attrServed", v);
  napi_create_double(env, (double)atomic_load(&s->pushed), &v); napi_set_named_property(env, c, "pushed", v);
  napi_create_double(env, (double)atomic_load(&s->sserved), &v); napi_set_named_property(env, c, "streamServed", v);
  napi_create_double(env, (double)atomic_load(&s->sparked), &v); napi_set_named_property(env, c, "streamWaited", v);
  napi_create_double(env, (double)atomic_load(&s->sreposted), &v); napi_set_named_property(env, c, "streamToJs", v);
  napi_create_double(env, (double)atomic_load(&s->soffered), &v); napi_set_named_property(env, c, "streamOffered", v);
  /* Chunk maps: registered, READs answered by the read threads, handed to JS, refused (EIO). */
  napi_create_double(env, (double)atomic_load(&s->cmapped), &v); napi_set_named_property(env, c, "mapped", v);
  napi_create_double(env, (double)atomic_load(&s->cserved), &v); napi_set_named_property(env, c, "mapServed", v);
  napi_create_double(env, (double)atomic_load(&s->ctojs), &v); napi_set_named_property(env, c, "mapToJs", v);
  napi_create_double(env, (double)atomic_load(&s->cfailed), &v); napi_set_named_property(env, c, "mapFailed", v);
  /* Of mapServed: READs of files of several chunks; chunks taken from the shared slots. */
  napi_create_double(env, (double)atomic_load(&s->clarge), &v); napi_set_named_property(env, c, "mapLarge", v);
  napi_create_double(env, (double)atomic_load(&s->cshares), &v); napi_set_named_property(env, c, "mapShared", v);
  napi_create_double(env, (double)atomic_load(&s->pushfail), &v); napi_set_named_property(env, c, "pushFailed", v);
  napi_create_double(env, (double)atomic_load(&s->pushlate), &v); napi_set_named_property(env, c, "pushLate", v);
  napi_create_double(env, (double)atomic_load(&s->pushpins), &v); napi_set_named_property(env, c, "pushPins", v);
  /* Pending maps: nodes marked, READs held, of those handed to the read threads, answered from
   * offered bytes, sent to JS (no map came, or not in time). */
  napi_create_double(env, (double)atomic_load(&s->cpended), &v); napi_set_named_property(env, c, "mapPended", v);
  napi_create_double(env, (double)atomic_load(&s->cparked), &v); napi_set_named_property(env, c, "mapHeld", v);
  napi_create_double(env, (double)atomic_load(&s->cparkmap), &v); napi_set_named_property(env, c, "mapHeldMapped", v);
  napi_create_double(env, (double)atomic_load(&s->cparkoffer), &v); napi_set_named_property(env, c, "mapHeldOffered", v);
  napi_create_double(env, (double)atomic_load(&s->cparkjs), &v); napi_set_named_property(env, c, "mapHeldToJs", v);
  /* The queue to JS (see post): requests taken, their waits (ms: sum, max), messages queued ahead
   * of them when posted (sum, max), notices and requests taken while they waited (sums) and the
   * JS thread's ms in those handlers; and its ms in all handlers of notices and of requests. */
  const struct { const char *k; double v; } q[] = {
    { "queueRequests", (double)s->qreqs }, { "queueWaitMs", s->qwait / 1e6 }, { "queueWaitMaxMs", s->qwaitmax / 1e6 },
    { "queueAhead", (double)s->qahead }, { "queueAheadMax", (double)s->qaheadmax }, { "queueNoticesFirst", (double)s->qnotes },
    { "queueRequestsFirst", (double)s->qreqsbefore }, { "queueNoticesFirstMs", s->qnotens / 1e6 }, { "queueRequestsFirstMs", s->qreqns / 1e6 },
    { "noticeMs", atomic_load(&s->cbn) / 1e6 }, { "requestMs", atomic_load(&s->cbr) / 1e6 },
    /* Batches of notices (posted: counts.batches) and the most notices one carried. */
    { "batchMax", (double)atomic_load(&s->bmax) },
  };
  for (size_t k = 0; k < sizeof q / sizeof q[0]; k++) { napi_create_double(env, q[k].v, &v); napi_set_named_property(env, c, q[k].k, v); }
  napi_set_named_property(env, o, "counts", c);
  return o;
}

/* destroy(s) -> true when done; false while anything is pending or the loop still runs. */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  SESSION_ARGS(1);
  napi_value r;
  if (!s->ended || atomic_load(&s->queued) || s->used || atomic_load(&s->works) || atomic_load(&s->nparked) || atomic_load(&s->cjobs) || atomic_load(&s->cparkn)) {
    napi_get_boolean(env, false, &r);
    return r;
  }
  pthread_join(s->thread, NULL);
  if (s->qstarted) {
    pthread_mutex_lock(&s->qmu);
    s->qstop = 1;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    pthread_join(s->qthread, NULL);
    s->qstarted = 0;
    free(s->q);
    s->q = NULL;
  }
  pthread_mutex_lock(&s->jmu);
  s->jstop = 1;
  pthread_cond_broadcast(&s->jcv);
  pthread_mutex_unlock(&s->jmu);
  for (int k = 0; k < s->nworkers; k++) pthread_join(s->workers[k], NULL);
  s->nworkers = 0;
  pthread_mutex_lock(&s->cmu);
  while (s->chead) cunlink(s, cfind(s, s->chead->ino));
  for (size_t b = 0; s->pb && b < PBUCKETS; b++) while (s->pb[b]) punlink(s, &s->pb[b]);
  free(s->pb);
  s->pb = NULL;
  for (size_t k = 0; k < s->npacks; k++) { if (s->packs[k].fd >= 0) close(s->packs[k].fd); free(s->packs[k].path); }
  free(s->packs);
  s->packs = NULL;
  s->npacks = s->packcap = 0;
  pthread_mutex_unlock(&s->cmu);
  for (int k = 0; k < CSLOTS; k++) { cfree(&s->kslots[k].data, &s->kslots[k].cap); s->kslots[k].state = 0; }
  pthread_mutex_lock(&g_mu);
  if (s->handle) g_sess[s->handle % GSESS] = NULL;
  pthread_mutex_unlock(&g_mu);
  while (atomic_load(&s->users)) usleep(100);
  pthread_mutex_lock(&s->smu);
  for (int b = 0; b < SBUCKETS; b++) while (s->sb[b]) sdrop(s, &s->sb[b], NULL, 1);
  while (s->nsfree) { s->nsfree--; free(s->sfree[s->nsfree]); }
  pthread_mutex_unlock(&s->smu);
  s->destroyed = 1;
  u_destroy(s);
  fuse_session_destroy(s->se);
  s->se = NULL;
  close(s->evfd);
  if (s->jssched >= 0) close(s->jssched);
  s->jssched = -1;
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  if (s->bref) napi_delete_reference(env, s->bref);
  s->bref = NULL;
  s->bcap = 0;
  free(s->slots); free(s->gens); free(s->free_list); free(s->qs);
  pthread_mutex_lock(&s->rmu);
  while (s->rhead) rdrop(s, rfind(s, s->rhead->ino));
  pthread_mutex_unlock(&s->rmu);
  pthread_mutex_lock(&s->nmu);
  for (uint32_t b = 0; s->db && b < DBUCKETS; b++) {
    while (s->db[b]) dfree(s, &s->db[b]);
  }
  free(s->db);
  free(s->nb);
  free(s->lb);
  s->db = NULL;
  s->nb = NULL;
  s->lb = NULL;
  for (size_t k = 0; k < s->fcap; k++) for (fnode_t *f = s->fino[k], *n; f; f = n) { n = f->inonext; free(f); }
  free(s->fid); free(s->fino);
  s->fid = s->fino = NULL;
  s->fcap = s->fcount = 0;
  pthread_mutex_unlock(&s->nmu);
  s->slots = NULL; s->gens = NULL; s->free_list = NULL;
  /* The session struct itself stays (the external may still be referenced): a few bytes. */
  napi_get_boolean(env, true, &r);
  return r;
}

/*
 * zstdDecompress(body, plain) -> Buffer of `plain` bytes, or null when the system's libzstd
 * cannot be loaded; throws on a frame that does not decode to exactly `plain` bytes. The caller
 * checks the bytes against their id (fs/decode-worker.ts), as for every other decode.
 *
 * Why: the zstd-napi build decoded the bench tree's largest file (35 MB of frames to 117 MB) in
 * 0.64 s of user CPU where the zstd tool, on the same frames, took 0.14 s; on these 2-core
 * machines that decode is most of a cold read's CPU. libzstd.so.1 is on every Debian system
 * (apt and dpkg use it); it is loaded at run time, so building the addon needs no zstd headers.
 * Safe from worker threads (each has its own context).
 */
typedef size_t (*zstd_decompress_fn)(void *, size_t, const void *, size_t);
typedef unsigned (*zstd_iserror_fn)(size_t);
typedef void *(*zstd_create_dctx_fn)(void);
typedef size_t (*zstd_decompress_dctx_fn)(void *, void *, size_t, const void *, size_t);
typedef size_t (*zstd_free_dctx_fn)(void *);
typedef size_t (*zstd_sizeof_dctx_fn)(const void *);
static zstd_decompress_fn zstd_decompress;
static zstd_iserror_fn zstd_iserror;
static zstd_create_dctx_fn zstd_create_dctx;
static zstd_decompress_dctx_fn zstd_decompress_dctx;
static zstd_free_dctx_fn zstd_free_dctx;
static zstd_sizeof_dctx_fn zstd_sizeof_dctx;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;
/* One decompression context per thread, kept: ZSTD_decompress makes and frees a ~160 KiB
 * context per call, fresh memory whose page faults cost more than the decode itself on these
 * VMs. Freed by an environment cleanup hook, not a pthread key destructor: a worker's teardown
 * may dlclose this addon (when no other thread loaded it: the fuse-native backend) before the
 * thread exits, and a destructor in unmapped code crashed the process (SIGSEGV). */
static __thread void *zstd_dctx;
static void zstd_dctx_free(void *arg) {
  (void)arg;
  if (zstd_dctx && zstd_free_dctx) zstd_free_dctx(zstd_dctx);
  zstd_dctx = NULL;
}

static void zstd_load(void) {
  void *h = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return;
  zstd_decompress = (zstd_decompress_fn)dlsym(h, "ZSTD_decompress");
  zstd_iserror = (zstd_iserror_fn)dlsym(h, "ZSTD_isError");
  zstd_create_dctx = (zstd_create_dctx_fn)dlsym(h, "ZSTD_createDCtx");
  zstd_decompress_dctx = (zstd_decompress_dctx_fn)dlsym(h, "ZSTD_decompressDCtx");
  zstd_free_dctx = (zstd_free_dctx_fn)dlsym(h, "ZSTD_freeDCtx");
  zstd_sizeof_dctx = (zstd_sizeof_dctx_fn)dlsym(h, "ZSTD_sizeof_DCtx");
  if (!zstd_create_dctx || !zstd_decompress_dctx || !zstd_free_dctx) zstd_create_dctx = NULL;
  if (!zstd_decompress || !zstd_iserror) zstd_decompress = NULL;
}

static size_t zstd_run(napi_env env, void *out, size_t plain, const void *src, size_t len) {
  if (zstd_create_dctx) {
    if (!zstd_dctx && (zstd_dctx = zstd_create_dctx()) && napi_add_env_cleanup_hook(env, zstd_dctx_free, NULL) != napi_ok) {
      zstd_free_dctx(zstd_dctx);
      zstd_dctx = NULL;
    }
    if (zstd_dctx) return zstd_decompress_dctx(zstd_dctx, out, plain, src, len);
  }
  return zstd_decompress(out, plain, src, len);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static int prefault_off = -1;
/* Fresh output memory made present in one call (MADV_POPULATE_WRITE, Linux 5.14) instead of one
 * page fault per 4 KiB as zstd writes it: on these VMs a fault costs ~5 us (measured: 117 MB of
 * fresh buffers, 0.6 s of faults). Pages already there are left as they are. */
static void prefault(void *p, size_t len) {
  if (prefault_off < 0) { const char *v = getenv("MIQ_MOUNT_PREFAULT"); prefault_off = v && strcmp(v, "0") == 0; }
  if (prefault_off) return;
  uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)p + len) & ~(uintptr_t)4095;
  if (e > a) madvise((void *)a, e - a, MADV_POPULATE_WRITE);
}

static napi_value js_zstd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  pthread_once(&zstd_once, zstd_load);
  napi_value res;
  if (!zstd_decompress) { napi_get_null(env, &res); return res; }
  void *src = NULL;
  size_t len = 0;
  if (!buffer_arg(env, argv[0], &src, &len)) return NULL;
  double want = num(env, argv[1]);
  if (!(want >= 1 && want <= (double)(1u << 30))) { napi_throw_range_error(env, NULL, "miqfuse: bad plain size"); return NULL; }
  size_t plain = (size_t)want;
  void *out = NULL;
  NAPI(napi_create_buffer(env, plain, &out, &res));
  size_t n = zstd_run(env, out, plain, src, len);
  if (zstd_iserror(n) || n != plain) { napi_throw_error(env, "EZSTD", "miqfuse: the frame does not decode to the expected size"); return NULL; }
  return res;
}

/* zstdDecompressInto(body, out) -> true, or false when libzstd cannot be loaded; throws unless
 * the frame decodes to exactly out.length bytes. `out` is the caller's (Buffer.allocUnsafeSlow:
 * not zero-filled first, as napi_create_buffer's are). */
static napi_value js_zstd_into(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  pthread_once(&zstd_once, zstd_load);
  napi_value res;
  if (!zstd_decompress) { napi_get_boolean(env, false, &res); return res; }
  void *src = NULL, *out = NULL;
  size_t len = 0, plain = 0;
  if (!buffer_arg(env, argv[0], &src, &len) || !buffer_arg(env, argv[1], &out, &plain)) return NULL;
  prefault(out, plain);
  size_t n = zstd_run(env, out, plain, src, len);
  if (zstd_iserror(n) || n != plain) { napi_throw_error(env, "EZSTD", "miqfuse: the frame does not decode to the expected size"); return NULL; }
  napi_get_boolean(env, true, &res);
  return res;
}

/* willneedRange(fd, off, len): asks the kernel to start reading [off, off + len) of an open file
 * (a pack) into the page cache, without waiting for it (posix_fadvise WILLNEED). A decode thread
 * calls it for the pack bytes of a stream's chunks well ahead of the ones it decodes now, so the
 * disk works while it decodes and its own preads find the bytes cached. */
static napi_value js_willneed_range(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  double fd = num(env, argv[0]), off = num(env, argv[1]), len = num(env, argv[2]);
  int ok = fd >= 0 && off >= 0 && len > 0 && posix_fadvise((int)fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED) == 0;
  napi_value res;
  napi_get_boolean(env, ok, &res);
  return res;
}

#ifdef MIQ_HAVE_BLAKE3
/* chunkDecodeOffer(handle, ino, off, body, plain, id) -> 1: offered; 0: not taken (nothing
 * streams that node, its bytes are there already, no libzstd): the caller takes its own way; -1:
 * the decoded bytes do not match `id` (32 bytes), nothing offered. Throws EZSTD when the frame
 * does not decode to `plain` bytes. From a decode thread: the zstd frame is decoded straight into
 * a block of the stream table and hashed there (BLAKE3), and only bytes that matched their id go
 * into the stream; chunkOffer's path decoded into the thread's buffer and copied (measured on
 * the bench's 117 MB file: the copy was 4 % of the serving process's samples, the hash and its
 * hex string in JS beside it). */
static napi_value js_chunk_decode_offer(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv)) return NULL;
  int h = (int)num(env, argv[0]);
  uint64_t ino = (uint64_t)num(env, argv[1]), off = (uint64_t)num(env, argv[2]);
  double want = num(env, argv[4]);
  void *src = NULL, *id = NULL;
  size_t len = 0, idlen = 0;
  if (!buffer_arg(env, argv[3], &src, &len) || !buffer_arg(env, argv[5], &id, &idlen)) return NULL;
  pthread_once(&zstd_once, zstd_load);
  int r = 0;
  session_t *s = h > 0 && idlen == 32 && want >= 1 && want <= (double)(1u << 30) && zstd_decompress ? suse(h) : NULL;
  if (s) {
    size_t plain = (size_t)want, cap = 0;
    char *b = NULL;
    pthread_mutex_lock(&s->smu);
    stream_t *st = *sfind(s, ino);
    int have = 0;
    for (seg_t *g = st ? st->segs : NULL; g && g->off <= off; g = g->next) if (g->off == off) have = 1;
    if (st && !have && !s->dropping) b = sblock(s, plain, &cap);
    pthread_mutex_unlock(&s->smu);
    if (b) {
      prefault(b, plain);
      size_t n = zstd_run(env, b, plain, src, len);
      if (zstd_iserror(n) || n != plain) r = -2;
      else {
        uint8_t got[32];
        blake3_hasher hh;
        blake3_hasher_init(&hh);
        blake3_hasher_update(&hh, b, plain);
        blake3_hasher_finalize(&hh, got, 32);
        if (memcmp(got, id, 32) != 0) r = -1;
        else {
          sout_t o = { .n = 0 };
          r = sadopt(s, ino, off, b, cap, plain, &o);
          sout_post(s, &o);
          b = NULL;
        }
      }
      if (b) { pthread_mutex_lock(&s->smu); sunblock(s, b, cap); pthread_mutex_unlock(&s->smu); }
    }
    atomic_fetch_sub(&s->users, 1);
  }
  if (r == -2) { napi_throw_error(env, "EZSTD", "miqfuse: the frame does not decode to the expected size"); return NULL; }
  napi_value res;
  napi_create_int32(env, r, &res);
  return res;
}

/* A read thread's buffers: stored bytes, a plain chunk, the last shared frame decoded (a
 * directory's small files mostly share a few frames), a READ's reply, and the chunks a READ
 * covers (copied out of the map under cmu). Kept for the thread's life: fresh memory for every
 * READ costs page faults that cost more than the decode (fuse-needs §23). */
typedef struct cbufs {
  char *st, *pl, *fr, *out;
  size_t stcap, plcap, frcap, outcap;
  uint32_t fpack;
  uint64_t foff;
  int fhave;
  cchunk_t *cv;
  size_t cvcap;
} cbufs_t;

/* A read thread's buffer (or a shared slot's) of at least `want` bytes. Its bytes are never kept
 * across a grow (every use fills it afresh), so a grow maps a new one, a power of two from
 * CBUF_MIN, made present in one call, and unmaps the old: no copy, and no page faults while a
 * READ decodes into it. Measured (fuse-needs §42): with realloc the two threads took ~1 900 page
 * faults in one cold read of the 117 MB file (~7 % of the serving CPU, ~10 us a fault here): the
 * slots and stored buffers grew chunk by chunk, and each move's free let glibc trim the arena,
 * whose pages the next grow faulted in again. */
#define CBUF_MIN (256u << 10)
static char *cgrow(char **b, size_t *cap, size_t want) {
  if (*cap >= want) return *b;
  size_t n = CBUF_MIN;
  while (n < want) n <<= 1;
  void *x = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (x == MAP_FAILED) return NULL;
  /* Not inherited by a child: a fork would otherwise make every page copy-on-write, and the next
   * decode into it would fault each one again. */
  madvise(x, n, MADV_DONTFORK);
  prefault(x, n);
  if (*b) munmap(*b, *cap);
  *b = x;
  *cap = n;
  return x;
}

static void cfree(char **b, size_t *cap) {
  if (*b) munmap(*b, *cap);
  *b = NULL;
  *cap = 0;
}

/* The descriptor of pack `pack` (opened once, kept until destroy); -1 when it cannot be. */
static int cfd(session_t *s, uint32_t pack) {
  char *path = NULL;
  pthread_mutex_lock(&s->cmu);
  for (size_t k = 0; k < s->npacks; k++) {
    if (s->packs[k].pack != pack) continue;
    if (s->packs[k].fd >= 0) { int fd = s->packs[k].fd; pthread_mutex_unlock(&s->cmu); return fd; }
    path = strdup(s->packs[k].path);
    break;
  }
  pthread_mutex_unlock(&s->cmu);
  if (!path) return -1;
  /* Opened outside the lock (the loop thread takes it for every READ). */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  free(path);
  if (fd < 0) return -1;
  pthread_mutex_lock(&s->cmu);
  for (size_t k = 0; k < s->npacks; k++) {
    if (s->packs[k].pack != pack) continue;
    if (s->packs[k].fd >= 0) { close(fd); fd = s->packs[k].fd; }
    else s->packs[k].fd = fd;
    break;
  }
  pthread_mutex_unlock(&s->cmu);
  return fd;
}

static int cpread(int fd, char *b, size_t len, uint64_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, b + got, len - got, (off_t)(off + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

/* zstd on a read thread (its context is freed when the thread ends, not by an env hook). */
static size_t czstd(void *out, size_t plain, const void *src, size_t len) {
  if (zstd_create_dctx) {
    if (!zstd_dctx) zstd_dctx = zstd_create_dctx();
    if (zstd_dctx) return zstd_decompress_dctx(zstd_dctx, out, plain, src, len);
  }
  return zstd_decompress(out, plain, src, len);
}

/* Chunk m's plain bytes, checked against its id: 1 (in `dst` when given, else at *out), 0 the
 * pack cannot be read (JS asks the store), -1 the bytes do not match their id (or do not decode).
 * `dst` (m->plain bytes) gets a raw chunk's pread or a zstd chunk's decode directly: a READ's
 * whole chunks are decoded straight into its reply. Nothing is served from here: the caller
 * replies only once every chunk of the READ matched. */
static int cdecode(session_t *s, const cchunk_t *m, cbufs_t *b, char *dst, const char **out) {
  int fd = cfd(s, m->pack);
  if (fd < 0) return 0;
  const char *plain = NULL;
  for (int fresh = 0; fresh < 2; fresh++) {
    int cached = 0;
    if (m->flags == 3) {
      if (b->fhave && b->fpack == m->pack && b->foff == m->off && !fresh) cached = 1;
      else {
        b->fhave = 0;
        if (!cgrow(&b->st, &b->stcap, m->stored) || !cgrow(&b->fr, &b->frcap, m->fsize)) return 0;
        if (cpread(fd, b->st, m->stored, m->off) != 0) return 0;
        size_t n = czstd(b->fr, m->fsize, b->st, m->stored);
        if (zstd_iserror(n) || n != m->fsize) return -1;
        b->fhave = 1; b->fpack = m->pack; b->foff = m->off;
      }
      plain = b->fr + m->foff;
    } else if (m->flags == 0) {
      char *to = dst ? dst : cgrow(&b->st, &b->stcap, m->stored);
      if (!to || cpread(fd, to, m->stored, m->off) != 0) return 0;
      plain = to;
    } else {
      if (!cgrow(&b->st, &b->stcap, m->stored)) return 0;
      if (cpread(fd, b->st, m->stored, m->off) != 0) return 0;
      char *to = dst ? dst : cgrow(&b->pl, &b->plcap, m->plain);
      if (!to) return 0;
      size_t n = czstd(to, m->plain, b->st, m->stored);
      if (zstd_iserror(n) || n != m->plain) return -1;
      plain = to;
    }
    uint8_t got[32];
    blake3_hasher hh;
    blake3_hasher_init(&hh);
    blake3_hasher_update(&hh, plain, m->plain);
    blake3_hasher_finalize(&hh, got, 32);
    if (memcmp(got, m->id, 32) == 0) {
      if (dst && plain != dst) memcpy(dst, plain, m->plain);
      if (out) *out = plain;
      return 1;
    }
    /* A frame remembered from an earlier READ may be stale (a pack rewritten under its name):
     * read once more from the pack before calling the chunk damaged. */
    if (!cached) break;
    b->fhave = 0;
  }
  b->fhave = 0;
  return -1;
}

/* Bytes [from, from + len) of chunk m into dst, through the decoded chunks the read threads share
 * (kslots): a chunk that straddles the end of one READ and the start of the next is decoded once
 * for both (with the kernel's readahead the two READs are mostly on the two threads at once: the
 * second waits for the first's decode instead of doing it again). Same results as cdecode. */
static int cshared(session_t *s, const cchunk_t *m, cbufs_t *b, size_t from, size_t len, char *dst) {
  cslot_t *k;
  pthread_mutex_lock(&s->kmu);
  for (;;) {
    k = NULL;
    for (int i = 0; i < CSLOTS; i++)
      if (s->kslots[i].state && memcmp(s->kslots[i].id, m->id, 32) == 0) { k = &s->kslots[i]; break; }
    if (!k || k->state == 2) break;
    /* Being decoded by the other thread (which never waits while it holds a slot). */
    pthread_cond_wait(&s->kcv, &s->kmu);
  }
  if (k) {
    memcpy(dst, k->data + from, len);
    k->tick = ++s->ktick;
    pthread_mutex_unlock(&s->kmu);
    atomic_fetch_add(&s->cshares, 1);
    return 1;
  }
  for (int i = 0; i < CSLOTS; i++) {
    cslot_t *x = &s->kslots[i];
    if (x->state == 1) continue;
    if (!k || x->state < k->state || (x->state == k->state && x->tick < k->tick)) k = x;
  }
  if (k) { memcpy(k->id, m->id, 32); k->state = 1; }
  pthread_mutex_unlock(&s->kmu);
  int r;
  if (!k) {
    const char *p = NULL;
    r = cdecode(s, m, b, NULL, &p);
    if (r == 1) memcpy(dst, p + from, len);
    return r;
  }
  /* Only the thread that set state 1 touches the slot's bytes until it is 2 again. */
  r = cgrow(&k->data, &k->cap, m->plain) ? cdecode(s, m, b, k->data, NULL) : 0;
  pthread_mutex_lock(&s->kmu);
  if (r == 1) {
    k->state = 2;
    k->len = m->plain;
    k->tick = ++s->ktick;
    memcpy(dst, k->data + from, len);
  } else k->state = 0;
  pthread_cond_broadcast(&s->kcv);
  pthread_mutex_unlock(&s->kmu);
  return r;
}

/* Bytes a large file's pack is asked for ahead of the READs (posix_fadvise WILLNEED), and how
 * short of that a READ lets it run before asking again: the read threads' preads then find the
 * pack's pages cached (as fs/reader.ts adviseAhead does for the decode pool, fuse-needs §23). */
#define CADVISE (8u << 20)
#define CADVISE_LOW (4u << 20)
#define CADVS 16
typedef struct cadv { uint32_t pack; uint64_t off, len; } cadv_t;

/* With cmu held: the pack ranges of map c's chunks from `lo` (a READ's first) to CADVISE plain
 * bytes past `end` (its end), when fewer than CADVISE_LOW past it were asked for already; merged
 * per pack. The first READ's own chunks are in its first range: one request to the disk for them
 * instead of a cold pread per chunk. */
static int cadvise(cmap_t *c, uint32_t lo, uint64_t end, cadv_t *adv) {
  uint32_t i = c->advised > lo ? c->advised : lo;
  if (i >= c->n || c->ch[i].at >= end + CADVISE_LOW) return 0;
  int n = 0;
  for (; i < c->n && c->ch[i].at < end + CADVISE; i++) {
    const cchunk_t *m = &c->ch[i];
    if (n && adv[n - 1].pack == m->pack && m->off >= adv[n - 1].off && m->off <= adv[n - 1].off + adv[n - 1].len + (64u << 10)) {
      uint64_t e = m->off + m->stored;
      if (e > adv[n - 1].off + adv[n - 1].len) adv[n - 1].len = e - adv[n - 1].off;
      continue;
    }
    if (n == CADVS) break;
    adv[n].pack = m->pack; adv[n].off = m->off; adv[n].len = m->stored;
    n++;
  }
  c->advised = i;
  return n;
}

/* Chunks cv[0, cnt) of a READ [off, end) decoded into its reply `out` (whole ones straight there,
 * the ones it covers in part through the shared slots), each checked: 1, or cdecode's 0 / -1 with
 * *bad the chunk that failed. */
static int crange(session_t *s, cbufs_t *b, const cchunk_t *cv, size_t cnt, uint64_t off, uint64_t end, char *out, size_t *bad) {
  int r = 1;
  for (size_t k = 0; k < cnt && r == 1; k++) {
    const cchunk_t *m = &cv[k];
    uint64_t from = m->at > off ? m->at : off, to = m->at + m->plain < end ? m->at + m->plain : end;
    char *dst = out + (from - off);
    if (from == m->at && to == m->at + m->plain) r = cdecode(s, m, b, dst, NULL);
    else r = cshared(s, m, b, from - m->at, to - from, dst);
    if (r != 1) *bad = k;
  }
  return r;
}

static void cbroken(session_t *s, uint64_t ino) {
  pthread_mutex_lock(&s->cmu);
  cmap_t *c = *cfind(s, ino);
  if (c) c->broken = 1;
  pthread_mutex_unlock(&s->cmu);
}

static void cwork(session_t *s, cjob_t *j, cbufs_t *b) {
  if (s->dropping) { fuse_reply_err(j->req, EIO); return; }
  cadv_t adv[CADVS];
  int nadv = 0, have = 0, single = 0;
  uint64_t size = 0, end = 0;
  size_t cnt = 0;
  pthread_mutex_lock(&s->cmu);
  cmap_t *c = *cfind(s, j->ino);
  if (c && !c->broken) {
    size = c->size;
    end = j->off < size ? (size - j->off < j->size ? size : j->off + j->size) : j->off;
    uint32_t lo = 0, hi = 0;
    if (j->off < end) {
      /* The chunk holding the READ's first byte: the last one starting at or before it. */
      uint32_t z = c->n - 1;
      while (lo < z) {
        uint32_t mid = lo + (z - lo + 1) / 2;
        if (c->ch[mid].at <= j->off) lo = mid;
        else z = mid - 1;
      }
      for (hi = lo; hi < c->n && c->ch[hi].at < end; hi++) {}
    }
    size_t want = hi - lo;
    if (b->cvcap < want) {
      cchunk_t *x = realloc(b->cv, (want + 64) * sizeof *x);
      if (x) { b->cv = x; b->cvcap = want + 64; }
    }
    if (b->cvcap >= want) {
      memcpy(b->cv, c->ch + lo, (hi - lo) * sizeof *b->cv);
      cnt = hi - lo;
      have = 1;
      single = c->n == 1;
      if (!single) nadv = cadvise(c, lo, end, adv);
    }
  }
  pthread_mutex_unlock(&s->cmu);
  for (int k = 0; k < nadv; k++) {
    int fd = cfd(s, adv[k].pack);
    if (fd >= 0) posix_fadvise(fd, (off_t)adv[k].off, (off_t)adv[k].len, POSIX_FADV_WILLNEED);
  }
  int r = have ? 1 : 0;
  size_t bad = 0, len = end > j->off ? end - j->off : 0;
  if (have && single && cnt == 1) {
    const cchunk_t *m = &b->cv[0];
    const char *plain = NULL;
    r = cdecode(s, m, b, NULL, &plain);
    if (r == 1) {
      /* A READ of part of the file (the kernel's first, small one): the rest is offered, as JS
       * offers a file it read, and answered by the loop thread. */
      if (j->off + len < m->plain && roffer(s, j->ino, plain, m->plain, 0) && rserve(s, j->req, j->ino, j->size, (off_t)j->off)) { atomic_fetch_add(&s->cserved, 1); return; }
      fuse_reply_buf(j->req, plain + j->off, len);
      atomic_fetch_add(&s->cserved, 1);
      return;
    }
  } else if (have) {
    /* A file of several chunks: the READ's chunks decoded in turn into its reply (whole ones
     * straight there, the ones it covers in part through the shared slots), each checked before
     * the reply goes out. */
    if (len && !cgrow(&b->out, &b->outcap, len)) r = 0;
    if (r == 1) r = crange(s, b, b->cv, cnt, j->off, end, b->out, &bad);
    if (r == 1) {
      fuse_reply_buf(j->req, b->out, len);
      atomic_fetch_add(&s->cserved, 1);
      atomic_fetch_add(&s->clarge, 1);
      return;
    }
  }
  /* A map that failed is kept, marked: the kernel's retry of this READ (and every later one) goes
   * to JS, whose own check answers EIO for a damaged chunk, and JS does not hand it a map again. */
  if (have) cbroken(s, j->ino);
  if (r < 0) {
    const cchunk_t *m = &b->cv[bad];
    char hex[65];
    for (int k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", m->id[k]);
    fprintf(stderr, "miq mount: chunk %s of file node %llu does not match its id (pack %u, offset %llu): EIO, no bytes served\n", hex, (unsigned long long)j->ino, m->pack,
            (unsigned long long)m->off);
    atomic_fetch_add(&s->cfailed, 1);
    fuse_reply_err(j->req, EIO);
    return;
  }
  /* No map any more, or the pack cannot be read: JS answers it (the store knows). */
  atomic_fetch_add(&s->ctojs, 1);
  msg_t *msg = mk(OP_READ, j->req, j->ino, j->size, (int64_t)j->off, NULL, 0);
  if (msg) post(s, msg);
  else fuse_reply_err(j->req, ENOMEM);
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
/* The code a READ runs (libzstd, this addon: BLAKE3) mapped into this process's page tables at the
 * read threads' start. The kernel never evicts a page cache page that some process maps, so a
 * cold page cache (a page-cache drop, memory pressure) then costs the first READ no reads of code
 * from disk: measured (fuse-needs §42), both threads of the first READ of the 117 MB file waited
 * ~2-3 ms on such reads after a drop. Best effort: nothing when /proc is not there. */
static void cwarm(void) {
  FILE *f = fopen("/proc/self/maps", "re");
  if (!f) return;
  char line[PATH_MAX + 128];
  while (fgets(line, sizeof line, f)) {
    unsigned long a, e;
    char perm[5];
    if (!strstr(line, "libzstd") && !strstr(line, "miqfuse")) continue;
    if (sscanf(line, "%lx-%lx %4s", &a, &e, perm) != 3 || perm[2] != 'x' || e <= a) continue;
    madvise((void *)a, e - a, MADV_POPULATE_READ);
  }
  fclose(f);
}
static pthread_once_t cwarm_once = PTHREAD_ONCE_INIT;

static void *cworker(void *arg) {
  session_t *s = arg;
  cbufs_t b;
  memset(&b, 0, sizeof b);
  /* Named for diagnostics (and the test that counts their page faults). */
  pthread_setname_np(pthread_self(), "miq-read");
  pthread_once(&cwarm_once, cwarm);
  /* A READ's reply (the kernel's READs are 1 MiB at most), a chunk's stored bytes and the
   * thread's zstd context, made present now rather than by faults in the first READs (see
   * cgrow). */
  cgrow(&b.out, &b.outcap, 1u << 20);
  cgrow(&b.st, &b.stcap, CBUF_MIN);
  if (zstd_create_dctx && !zstd_dctx && (zstd_dctx = zstd_create_dctx()) && zstd_sizeof_dctx) prefault(zstd_dctx, zstd_sizeof_dctx(zstd_dctx));
  for (;;) {
    pthread_mutex_lock(&s->jmu);
    while (!s->jhead && !s->jstop) {
      if (!atomic_load(&s->cparkn)) { pthread_cond_wait(&s->jcv, &s->jmu); continue; }
      /* READs held for pending maps: wake every PTICK to send the overdue ones to JS. */
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += (long)PTICK_NS;
      if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
      pthread_cond_timedwait(&s->jcv, &s->jmu, &ts);
      pthread_mutex_unlock(&s->jmu);
      csweep(s);
      pthread_mutex_lock(&s->jmu);
    }
    cjob_t *j = s->jhead;
    if (!j) { pthread_mutex_unlock(&s->jmu); break; }
    s->jhead = j->next;
    if (!s->jhead) s->jtail = NULL;
    pthread_mutex_unlock(&s->jmu);
    cwork(s, j, &b);
    free(j);
    atomic_fetch_sub(&s->cjobs, 1);
  }
  cfree(&b.st, &b.stcap); cfree(&b.pl, &b.plcap); cfree(&b.fr, &b.frcap); cfree(&b.out, &b.outcap); free(b.cv);
  if (zstd_dctx && zstd_free_dctx) zstd_free_dctx(zstd_dctx);
  zstd_dctx = NULL;
  return NULL;
}

/* mapPack(s, pack, path): where pack number `pack` is (before the first map naming it). */
static napi_value js_map_pack(napi_env env, napi_callback_info info) {
  SESSION_ARGS(3);
  uint32_t pack = (uint32_t)num(env, argv[1]);
  char path[PATH_MAX];
  size_t n = 0;
  NAPI(napi_get_value_string_utf8(env, argv[2], path, sizeof path, &n));
  pthread_mutex_lock(&s->cmu);
  size_t k = 0;
  while (k < s->npacks && s->packs[k].pack != pack) k++;
  if (k == s->npacks) {
    if (s->npacks == s->packcap) {
      size_t nc = s->packcap ? s->packcap * 2 : 64;
      cpack_t *x = realloc(s->packs, nc * sizeof *x);
      if (x) { s->packs = x; s->packcap = nc; }
    }
    if (s->npacks < s->packcap) {
      s->packs[k].pack = pack; s->packs[k].fd = -1; s->packs[k].path = strdup(path);
      if (s->packs[k].path) s->npacks++;
    }
  }
  pthread_mutex_unlock(&s->cmu);
  return NULL;
}

/* Whether one chunk's map is one the read threads can serve (sizes, codec, frame), as JS hands
 * it: numbers from JS are doubles. */
static int cvalid(double pack, double off, double stored, double plain, double flags, double foff, double fsize) {
  if (!(pack >= 0 && pack < 4294967296.0) || !(off >= 0) || !(stored >= 1 && stored <= (64 << 20)) || !(plain >= 1 && plain <= (16 << 20))) return 0;
  return flags == 0 ? stored == plain : flags == 3 ? (fsize >= 1 && fsize <= (64 << 20) && foff >= 0 && foff + plain <= fsize) : flags == 1;
}

/* JS thread: starts the read threads (at the first map) and files map c under its node, in place
 * of an older one; the oldest maps leave beyond CMAPS maps or CCHUNKS chunks. False (c freed)
 * when it cannot be. */
static void cstart(session_t *s) {
  if (s->nworkers) return;
  /* The shared slots made present before the threads run (see cgrow). */
  for (int k = 0; k < CSLOTS; k++) cgrow(&s->kslots[k].data, &s->kslots[k].cap, CBUF_MIN);
  for (int k = 0; k < CWORKERS; k++) if (pthread_create(&s->workers[s->nworkers], NULL, cworker, s) == 0) s->nworkers++;
}

static int cinsert(session_t *s, cmap_t *c) {
  cstart(s);
  if (!s->nworkers) { free(c); return 0; }
  pthread_mutex_lock(&s->cmu);
  cmap_t **pp = cfind(s, c->ino);
  if (*pp) cunlink(s, pp);
  c->hnext = s->cb[c->ino % CBUCKETS];
  s->cb[c->ino % CBUCKETS] = c;
  c->prev = s->ctail;
  if (s->ctail) s->ctail->next = c; else s->chead = c;
  s->ctail = c;
  s->ncmaps++;
  s->nmchunks += c->n;
  while ((s->ncmaps > CMAPS || s->nmchunks > CCHUNKS) && s->chead && s->chead != c) cunlink(s, cfind(s, s->chead->ino));
  uint64_t ino = c->ino;
  pthread_mutex_unlock(&s->cmu);
  atomic_fetch_add(&s->cmapped, 1);
  cunpend(s, ino, 1);
  return 1;
}

/* map(s, ino, pack, offset, stored, plain, flags, frameOff, frameSize, id) -> bool: file node
 * `ino`'s whole content is one chunk (id: its 32-byte BLAKE3), `stored` bytes at `offset` of
 * pack `pack` (mapPack) with codec `flags` (0 raw, 1 zstd, 3 `plain` bytes at frameOff of a
 * frame of frameSize); its READs that nothing else here answers are answered by the read threads
 * (see "Chunk maps"). False when not taken. */
static napi_value js_map(napi_env env, napi_callback_info info) {
  SESSION_ARGS(10);
  napi_value res;
  napi_get_boolean(env, false, &res);
  uint64_t ino = (uint64_t)num(env, argv[1]);
  double pack = num(env, argv[2]), off = num(env, argv[3]), stored = num(env, argv[4]), plain = num(env, argv[5]);
  double flags = num(env, argv[6]), foff = num(env, argv[7]), fsize = num(env, argv[8]);
  void *id = NULL;
  size_t idlen = 0;
  if (!buffer_arg(env, argv[9], &id, &idlen)) return NULL;
  if (s->dropping || s->jstop || ino == 0 || idlen != 32 || !zstd_decompress || !cvalid(pack, off, stored, plain, flags, foff, fsize)) return res;
  cmap_t *c = calloc(1, sizeof *c + sizeof(cchunk_t));
  if (!c) return res;
  c->ino = ino; c->size = (uint64_t)plain; c->n = 1;
  cchunk_t *m = &c->ch[0];
  m->at = 0; m->off = (uint64_t)off; m->pack = (uint32_t)pack; m->stored = (uint32_t)stored; m->plain = (uint32_t)plain;
  m->flags = (uint32_t)flags; m->foff = (uint32_t)foff; m->fsize = (uint32_t)fsize;
  memcpy(m->id, id, 32);
  napi_get_boolean(env, cinsert(s, c), &res);
  return res;
}

/* Bytes per chunk in mapFile's buffer: at, offset (float64 LE), pack, stored, plain, flags,
 * frameOff, frameSize (uint32 LE), id (32 bytes). */
#define CREC 72

/* mapFile(s, ino, size, chunks) -> bool: file node `ino` (`size` bytes) is the chunks described
 * in `chunks` (CREC bytes each, in file order, each starting where the one before ends; raw,
 * zstd or framed, never a delta): its READs that nothing else here answers are answered by the
 * read threads, every chunk a READ covers decoded and checked against its id before the reply
 * (see "Chunk maps"). False when not taken. */
static napi_value js_map_file(napi_env env, napi_callback_info info) {
  SESSION_ARGS(4);
  napi_value res;
  napi_get_boolean(env, false, &res);
  uint64_t ino = (uint64_t)num(env, argv[1]);
  double size = num(env, argv[2]);
  void *data = NULL;
  size_t len = 0;
  if (!buffer_arg(env, argv[3], &data, &len)) return NULL;
  size_t n = len / CREC;
  if (s->dropping || s->jstop || ino == 0 || !zstd_decompress || n == 0 || len % CREC || n > CCHUNKS / 4 || !(size >= 1 && size <= 9007199254740992.0)) return res;
  cmap_t *c = calloc(1, sizeof *c + n * sizeof(cchunk_t));
  if (!c) return res;
  c->ino = ino; c->size = (uint64_t)size; c->n = (uint32_t)n;
  const uint8_t *p = data;
  uint64_t at = 0;
  for (size_t k = 0; k < n; k++, p += CREC) {
    double d[2];
    uint32_t u[6];
    memcpy(d, p, sizeof d);
    memcpy(u, p + 16, sizeof u);
    cchunk_t *m = &c->ch[k];
    if (d[0] != (double)at || !cvalid(u[0], d[1], u[1], u[2], u[3], u[4], u[5])) { free(c); return res; }
    m->at = at; m->off = (uint64_t)d[1]; m->pack = u[0]; m->stored = u[1]; m->plain = u[2]; m->flags = u[3]; m->foff = u[4]; m->fsize = u[5];
    memcpy(m->id, p + 40, 32);
    at += m->plain;
  }
  if (at != c->size) { free(c); return res; }
  napi_get_boolean(env, cinsert(s, c), &res);
  return res;
}

/* pendMaps(s, maxBytes, ms): from now on a LOOKUP this loop answers of a regular file of at
 * most maxBytes marks its node pending, and its READs are held for its map at most `ms` after
 * (see "Pending maps"); 0 bytes: off. */
static napi_value js_pend_maps(napi_env env, napi_callback_info info) {
  SESSION_ARGS(3);
  double max = num(env, argv[1]), ms = num(env, argv[2]);
  /* The read threads now: nodes are marked only while they run (the first small file read). */
  if (!s->dropping && !s->jstop) cstart(s);
  pthread_mutex_lock(&s->cmu);
  if (!s->pb) s->pb = calloc(PBUCKETS, sizeof *s->pb);
  s->pendns = ms > 0 && ms <= 10000 ? (uint64_t)(ms * 1e6) : 0;
  s->pendmax = s->pb && s->pendns && max > 0 && max <= (double)(1u << 30) ? (uint64_t)max : 0;
  pthread_mutex_unlock(&s->cmu);
  return NULL;
}

/* pend(s, ino): node `ino` (a small file JS answered a LOOKUP of) is pending: JS hands its map,
 * or unpends it. */
static napi_value js_pend(napi_env env, napi_callback_info info) {
  SESSION_ARGS(2);
  cpend(s, (uint64_t)num(env, argv[1]));
  return NULL;
}

/* unpend(s, ino): no map is coming for node `ino`: READs held for it go to JS. */
static napi_value js_unpend(napi_env env, napi_callback_info info) {
  SESSION_ARGS(2);
  cunpend(s, (uint64_t)num(env, argv[1]), 0);
  return NULL;
}

/* mapRead(s, slot, ino, size, off) -> 1: a READ that reached JS, handed to the read threads (the
 * node has a map); 0: the node has no map (the slot still JS's); -1: its map failed, or the
 * threads stop (the slot still JS's: JS answers it its own way). */
static napi_value js_map_read(napi_env env, napi_callback_info info) {
  SESSION_ARGS(5);
  uint64_t ino = (uint64_t)num(env, argv[2]);
  double size = num(env, argv[3]), off = num(env, argv[4]);
  if (s->dropping || !(off >= 0) || !(size >= 0)) return ret_int(env, -1);
  int has = s->nworkers ? chas(s, ino) : 0;
  if (has != 1) return ret_int(env, has);
  fuse_req_t r = slot_take(s, num(env, argv[1]));
  if (!r) return ret_int(env, -1);
  if (!cqueue(s, r, ino, (size_t)size, (uint64_t)off)) {
    slot_untake(s, num(env, argv[1]), r);
    return ret_int(env, -1);
  }
  return ret_int(env, 1);
}
#endif

static napi_value init(napi_env env, napi_value exports) {
  /* libzstd is loaded with the addon (the mount and each decode thread load it at start), not on
   * the first decode: a benchmark drops the page cache after the mount starts, and that dlopen
   * then read the library from disk in front of the first cold read (0.24 s at load 12, strace). */
  pthread_once(&zstd_once, zstd_load);
  napi_property_descriptor d[] = {
    { "mount", 0, js_mount, 0, 0, 0, napi_default, 0 },
    { "replyErr", 0, js_reply_err, 0, 0, 0, napi_default, 0 },
    { "replyEntry", 0, js_reply_entry, 0, 0, 0, napi_default, 0 },
    { "replyAttr", 0, js_reply_attr, 0, 0, 0, napi_default, 0 },
    { "replyBuf", 0, js_reply_buf, 0, 0, 0, napi_default, 0 },
    { "replyBufs", 0, js_reply_bufs, 0, 0, 0, napi_default, 0 },
    { "replyReadlink", 0, js_reply_readlink, 0, 0, 0, napi_default, 0 },
    { "replyXattr", 0, js_reply_xattr, 0, 0, 0, napi_default, 0 },
    { "replyStatfs", 0, js_reply_statfs, 0, 0, 0, napi_default, 0 },
    { "replyDir", 0, js_reply_dir, 0, 0, 0, napi_default, 0 },
    { "notifyInval", 0, js_notify, 0, 0, 0, napi_default, 0 },
    { "offer", 0, js_offer, 0, 0, 0, napi_default, 0 },
    { "pushOffered", 0, js_push_offered, 0, 0, 0, napi_default, 0 },
    { "serveOffered", 0, js_serve_offered, 0, 0, 0, napi_default, 0 },
    { "readyOffer", 0, js_ready_offer, 0, 0, 0, napi_default, 0 },
    { "streamHandle", 0, js_stream_handle, 0, 0, 0, napi_default, 0 },
    { "streamPromise", 0, js_stream_promise, 0, 0, 0, napi_default, 0 },
    { "streamSettle", 0, js_stream_settle, 0, 0, 0, napi_default, 0 },
    { "chunkOffer", 0, js_chunk_offer, 0, 0, 0, napi_default, 0 },
#ifdef MIQ_HAVE_BLAKE3
    { "chunkDecodeOffer", 0, js_chunk_decode_offer, 0, 0, 0, napi_default, 0 },
    { "map", 0, js_map, 0, 0, 0, napi_default, 0 },
    { "mapPack", 0, js_map_pack, 0, 0, 0, napi_default, 0 },
    { "mapFile", 0, js_map_file, 0, 0, 0, napi_default, 0 },
    { "mapRead", 0, js_map_read, 0, 0, 0, napi_default, 0 },
    { "pendMaps", 0, js_pend_maps, 0, 0, 0, napi_default, 0 },
    { "pend", 0, js_pend, 0, 0, 0, napi_default, 0 },
    { "unpend", 0, js_unpend, 0, 0, 0, napi_default, 0 },
#endif
    { "streamWait", 0, js_stream_wait, 0, 0, 0, napi_default, 0 },
    { "names", 0, js_names, 0, 0, 0, napi_default, 0 },
    { "unnames", 0, js_unnames, 0, 0, 0, napi_default, 0 },
    { "attrs", 0, js_attrs, 0, 0, 0, napi_default, 0 },
    { "namesTree", 0, js_names_tree, 0, 0, 0, napi_default, 0 },
    { "fileIno", 0, js_file_ino, 0, 0, 0, napi_default, 0 },
    { "fileNode", 0, js_file_node, 0, 0, 0, napi_default, 0 },
    { "fileForget", 0, js_file_forget, 0, 0, 0, napi_default, 0 },
    { "zstdDecompress", 0, js_zstd, 0, 0, 0, napi_default, 0 },
    { "zstdDecompressInto", 0, js_zstd_into, 0, 0, 0, napi_default, 0 },
    { "willneed", 0, js_willneed, 0, 0, 0, napi_default, 0 },
    { "willneedRange", 0, js_willneed_range, 0, 0, 0, napi_default, 0 },
    { "detach", 0, js_detach, 0, 0, 0, napi_default, 0 },
    { "stop", 0, js_stop, 0, 0, 0, napi_default, 0 },
    { "drop", 0, js_drop, 0, 0, 0, napi_default, 0 },
    { "state", 0, js_state, 0, 0, 0, napi_default, 0 },
    { "destroy", 0, js_destroy, 0, 0, 0, napi_default, 0 },
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
