/*
 * intern: open-addressing hash of ids (linear probing, backward-shift
 * deletion) over an entry array; see intern.h.
 */
#include "intern.h"

#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "log.h"
#include "xalloc.h"
#include "utf8.h"

typedef struct entry {
    char *s; /* NULL when free */
    uint32_t len;
    uint32_t refs; /* next free id when free */
    uint8_t upper; /* lowercasing (utf8_lower) would change s */
} entry_t;

typedef struct slot {
    uint32_t id1; /* id + 1; 0 = empty */
    uint32_t h;   /* low hash bits, also the home position */
} slot_t;

struct intern {
    entry_t *entries;
    uint32_t n_entries; /* used prefix of entries */
    uint32_t cap_entries;
    uint32_t free_head; /* INTERN_NONE when no free id */
    uint32_t live;
    slot_t *slots;
    uint32_t mask; /* slots - 1 */
    size_t str_bytes;
};

/* glibc chunk size of a malloc(n): what the allocation really costs. */
static size_t chunk(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return c < 32 ? 32 : c;
}

intern_t *intern_create(void)
{
    intern_t *t = xmalloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->free_head = INTERN_NONE;
    t->mask = 63;
    t->slots = calloc(64, sizeof(slot_t));
    t->cap_entries = 32;
    t->entries = xmalloc(t->cap_entries * sizeof(entry_t));
    if (t->slots == NULL)
        log_fatal("out of memory");
    return t;
}

void intern_destroy(intern_t *t)
{
    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->n_entries; i++)
        free(t->entries[i].s);
    free(t->entries);
    free(t->slots);
    free(t);
}

static uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/*
 * Names and keys are short: up to 32 bytes they are hashed a word at a
 * time with a multiply-xorshift mix, longer ones with XXH3.
 */
static uint32_t hash32(const char *s, size_t len)
{
    if (len > 32)
        return (uint32_t)XXH3_64bits(s, len);
    const uint64_t m = 0xff51afd7ed558ccdULL;
    uint64_t h = (uint64_t)len * 0x9E3779B97F4A7C15ULL;
    if (len >= 8) {
        size_t i = 0;
        for (; i + 8 < len; i += 8) {
            h = (h ^ load64(s + i)) * m;
            h ^= h >> 29;
        }
        h = (h ^ load64(s + len - 8)) * m;
    } else if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + len - 4, 4);
        h = (h ^ ((uint64_t)a << 32 | b)) * m;
    } else if (len > 0) {
        uint64_t v = (uint64_t)(uint8_t)s[0] << 16 | (uint64_t)(uint8_t)s[len / 2] << 8 | (uint8_t)s[len - 1];
        h = (h ^ v) * m;
    }
    h ^= h >> 32;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    return (uint32_t)h;
}

/* a == b for len bytes; short strings compared a word at a time. */
static int bytes_eq(const char *a, const char *b, size_t len)
{
    if (len < 8 || len > 32)
        return memcmp(a, b, len) == 0;
    for (size_t i = 0; i + 8 < len; i += 8)
        if (load64(a + i) != load64(b + i))
            return 0;
    return load64(a + len - 8) == load64(b + len - 8);
}

static uint32_t lookup(const intern_t *t, const char *s, size_t len, uint32_t h)
{
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const slot_t *sl = &t->slots[i];
        if (sl->id1 == 0)
            return INTERN_NONE;
        if (sl->h == h) {
            const entry_t *e = &t->entries[sl->id1 - 1];
            if (e->len == len && bytes_eq(e->s, s, len))
                return sl->id1 - 1;
        }
    }
}

uint32_t intern_find(const intern_t *t, const char *s, size_t len)
{
    return lookup(t, s, len, hash32(s, len));
}

static void grow_slots(intern_t *t)
{
    uint32_t ncap = (t->mask + 1) * 2;
    slot_t *ns = calloc(ncap, sizeof(slot_t));
    if (ns == NULL)
        log_fatal("out of memory");
    for (uint32_t i = 0; i <= t->mask; i++) {
        slot_t sl = t->slots[i];
        if (sl.id1 == 0)
            continue;
        uint32_t j = sl.h & (ncap - 1);
        while (ns[j].id1 != 0)
            j = (j + 1) & (ncap - 1);
        ns[j] = sl;
    }
    free(t->slots);
    t->slots = ns;
    t->mask = ncap - 1;
}

/* Create s (not present, hash h) with one reference. */
static uint32_t insert(intern_t *t, const char *s, size_t len, uint32_t h, int upper)
{
    uint32_t id;
    if ((uint64_t)(t->live + 1) * 10 > (uint64_t)(t->mask + 1) * 7)
        grow_slots(t);
    if (t->free_head != INTERN_NONE) {
        id = t->free_head;
        t->free_head = t->entries[id].refs;
    } else {
        if (t->n_entries == t->cap_entries) {
            t->cap_entries *= 2;
            t->entries = realloc(t->entries, (size_t)t->cap_entries * sizeof(entry_t));
            if (t->entries == NULL)
                log_fatal("out of memory");
        }
        id = t->n_entries++;
    }
    entry_t *e = &t->entries[id];
    e->s = xmalloc(len + 1);
    memcpy(e->s, s, len);
    e->s[len] = '\0';
    e->len = (uint32_t)len;
    e->refs = 1;
    e->upper = (uint8_t)upper;
    t->live++;
    t->str_bytes += chunk(len + 1);
    uint32_t i = h & t->mask;
    while (t->slots[i].id1 != 0)
        i = (i + 1) & t->mask;
    t->slots[i].id1 = id + 1;
    t->slots[i].h = h;
    return id;
}

uint32_t intern_acquire(intern_t *t, const char *s, size_t len)
{
    uint32_t h = hash32(s, len);
    uint32_t id = lookup(t, s, len, h);
    if (id != INTERN_NONE) {
        t->entries[id].refs++;
        return id;
    }
    return insert(t, s, len, h, !utf8_is_lower(s, len));
}

uint32_t intern_acquire_lower(intern_t *t, uint32_t hint, const char *s, size_t len)
{
    if (hint < t->n_entries) {
        entry_t *e = &t->entries[hint];
        if (e->s != NULL && !e->upper && e->len == len && bytes_eq(e->s, s, len)) {
            e->refs++;
            return hint;
        }
    }
    uint32_t h = hash32(s, len);
    uint32_t id = lookup(t, s, len, h);
    if (id != INTERN_NONE && !t->entries[id].upper) {
        t->entries[id].refs++;
        return id;
    }
    if (id == INTERN_NONE && utf8_is_lower(s, len))
        return insert(t, s, len, h, 0);
    char buf[256 * UTF8_MAX_GROWTH] = {0};
    char *low = len <= 256 ? buf : xmalloc(len * UTF8_MAX_GROWTH);
    id = intern_acquire(t, low, utf8_lower_to(low, s, len));
    if (low != buf)
        free(low);
    return id;
}

uint32_t intern_acquire_hint(intern_t *t, uint32_t hint, const char *s, size_t len)
{
    if (hint < t->n_entries) {
        entry_t *e = &t->entries[hint];
        if (e->s != NULL && e->len == len && bytes_eq(e->s, s, len)) {
            e->refs++;
            return hint;
        }
    }
    return intern_acquire(t, s, len);
}

void intern_ref(intern_t *t, uint32_t id)
{
    t->entries[id].refs++;
}

void intern_release(intern_t *t, uint32_t id)
{
    entry_t *e = &t->entries[id];
    if (--e->refs != 0)
        return;
    uint32_t h = hash32(e->s, e->len);
    uint32_t i = h & t->mask;
    while (t->slots[i].id1 != id + 1)
        i = (i + 1) & t->mask;
    /* backward-shift deletion keeps every probe chain unbroken */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->slots[j].id1 == 0)
            break;
        uint32_t home = t->slots[j].h & t->mask;
        if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].id1 = 0;
    t->str_bytes -= chunk(e->len + 1);
    free(e->s);
    e->s = NULL;
    e->len = 0;
    e->refs = t->free_head;
    t->free_head = id;
    t->live--;
}

str_t intern_str(const intern_t *t, uint32_t id)
{
    const entry_t *e = &t->entries[id];
    return (str_t){e->s, e->len};
}

size_t intern_bytes(const intern_t *t)
{
    return t->str_bytes + chunk((size_t)t->cap_entries * sizeof(entry_t)) +
           chunk((size_t)(t->mask + 1) * sizeof(slot_t)) + chunk(sizeof(*t));
}

size_t intern_count(const intern_t *t)
{
    return t->live;
}
