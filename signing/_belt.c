/* belt (STB 34.101.31) in C: belt-block encryption, belt-compress and belt-hash.
 *
 * An optional accelerator for signing/belt.py, written from the standard like the Python code
 * there (which stays the reference and the fallback); tests/test_belt_c.py checks both against
 * the standard's tables and against each other. Words are little-endian 32-bit, as in the standard.
 *
 * Python API: encrypt_block(block: bytes, key: bytes) -> bytes and the type BeltHash
 * (update, digest, hexdigest, copy; name, digest_size, block_size), like hashlib's objects.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The S-box H (table 1 of the standard); its first 32 octets are also belt-hash's initial state. */
static const uint8_t H[256] = {
    0xB1, 0x94, 0xBA, 0xC8, 0x0A, 0x08, 0xF5, 0x3B, 0x36, 0x6D, 0x00, 0x8E, 0x58, 0x4A, 0x5D, 0xE4,
    0x85, 0x04, 0xFA, 0x9D, 0x1B, 0xB6, 0xC7, 0xAC, 0x25, 0x2E, 0x72, 0xC2, 0x02, 0xFD, 0xCE, 0x0D,
    0x5B, 0xE3, 0xD6, 0x12, 0x17, 0xB9, 0x61, 0x81, 0xFE, 0x67, 0x86, 0xAD, 0x71, 0x6B, 0x89, 0x0B,
    0x5C, 0xB0, 0xC0, 0xFF, 0x33, 0xC3, 0x56, 0xB8, 0x35, 0xC4, 0x05, 0xAE, 0xD8, 0xE0, 0x7F, 0x99,
    0xE1, 0x2B, 0xDC, 0x1A, 0xE2, 0x82, 0x57, 0xEC, 0x70, 0x3F, 0xCC, 0xF0, 0x95, 0xEE, 0x8D, 0xF1,
    0xC1, 0xAB, 0x76, 0x38, 0x9F, 0xE6, 0x78, 0xCA, 0xF7, 0xC6, 0xF8, 0x60, 0xD5, 0xBB, 0x9C, 0x4F,
    0xF3, 0x3C, 0x65, 0x7B, 0x63, 0x7C, 0x30, 0x6A, 0xDD, 0x4E, 0xA7, 0x79, 0x9E, 0xB2, 0x3D, 0x31,
    0x3E, 0x98, 0xB5, 0x6E, 0x27, 0xD3, 0xBC, 0xCF, 0x59, 0x1E, 0x18, 0x1F, 0x4C, 0x5A, 0xB7, 0x93,
    0xE9, 0xDE, 0xE7, 0x2C, 0x8F, 0x0C, 0x0F, 0xA6, 0x2D, 0xDB, 0x49, 0xF4, 0x6F, 0x73, 0x96, 0x47,
    0x06, 0x07, 0x53, 0x16, 0xED, 0x24, 0x7A, 0x37, 0x39, 0xCB, 0xA3, 0x83, 0x03, 0xA9, 0x8B, 0xF6,
    0x92, 0xBD, 0x9B, 0x1C, 0xE5, 0xD1, 0x41, 0x01, 0x54, 0x45, 0xFB, 0xC9, 0x5E, 0x4D, 0x0E, 0xF2,
    0x68, 0x20, 0x80, 0xAA, 0x22, 0x7D, 0x64, 0x2F, 0x26, 0x87, 0xF9, 0x34, 0x90, 0x40, 0x55, 0x11,
    0xBE, 0x32, 0x97, 0x13, 0x43, 0xFC, 0x9A, 0x48, 0xA0, 0x2A, 0x88, 0x5F, 0x19, 0x4B, 0x09, 0xA1,
    0x7E, 0xCD, 0xA4, 0xD0, 0x15, 0x44, 0xAF, 0x8C, 0xA5, 0x84, 0x50, 0xBF, 0x66, 0xD2, 0xE8, 0x8A,
    0xA2, 0xD7, 0x46, 0x52, 0x42, 0xA8, 0xDF, 0xB3, 0x69, 0x74, 0xC5, 0x51, 0xEB, 0x23, 0x29, 0x21,
    0xD4, 0xEF, 0xD9, 0xB4, 0x3A, 0x62, 0x28, 0x75, 0x91, 0x14, 0x10, 0xEA, 0x77, 0x6C, 0xDA, 0x1D,
};

/* G_r as four table lookups: H of byte j of u, put in place j and rotated by r towards the high
 * bits (RotHi). Filled once at import; G[0], G[1], G[2] are for r = 5, 13, 21. */
static uint32_t G[3][4][256];

static uint32_t rot_hi(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

static void fill_tables(void)
{
    static const int rotations[3] = {5, 13, 21};
    for (int t = 0; t < 3; t++)
        for (int j = 0; j < 4; j++)
            for (int u = 0; u < 256; u++)
                G[t][j][u] = rot_hi((uint32_t)H[u] << (8 * j), rotations[t]);
}

#define G_(t, x) (G[t][0][(x) & 0xFF] | G[t][1][((x) >> 8) & 0xFF] | G[t][2][((x) >> 16) & 0xFF] | G[t][3][(x) >> 24])
#define G5(x) G_(0, x)
#define G13(x) G_(1, x)
#define G21(x) G_(2, x)

static uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store32(uint8_t *p, uint32_t w)
{
    p[0] = (uint8_t)w; p[1] = (uint8_t)(w >> 8); p[2] = (uint8_t)(w >> 16); p[3] = (uint8_t)(w >> 24);
}

/* belt-block (6.1.3): x (4 words) encrypted under key k (8 words) into y (4 words). Round i uses
 * K[7i-6..7i], the key words repeated: K[n] = k[(n - 1) mod 8]. x and y may be the same array. */
static void block_encrypt(uint32_t y[4], const uint32_t x[4], const uint32_t k[8])
{
    uint32_t a = x[0], b = x[1], c = x[2], d = x[3], e, swap;
    unsigned n = 0; /* index of K[7i-6] in k, counted from 0 */
    for (uint32_t i = 1; i <= 8; i++, n += 7) {
        b ^= G5(a + k[n % 8]);
        c ^= G21(d + k[(n + 1) % 8]);
        a -= G13(b + k[(n + 2) % 8]);
        e = G21(b + c + k[(n + 3) % 8]) ^ i;
        b += e;
        c -= e;
        d += G13(c + k[(n + 4) % 8]);
        b ^= G21(a + k[(n + 5) % 8]);
        c ^= G5(d + k[(n + 6) % 8]);
        swap = a; a = b; b = swap; /* a <-> b */
        swap = c; c = d; d = swap; /* c <-> d */
        swap = b; b = c; c = swap; /* b <-> c */
    }
    y[0] = b; y[1] = d; y[2] = a; y[3] = c;
}

/* belt-compress (6.3.2) of X1 || X2 || X3 || X4 = x (16 words): s gets S (4 words), y gets Y
 * (8 words). y may alias x[8..15] (belt-hash keeps its state h there). */
static void compress(uint32_t s[4], uint32_t y[8], const uint32_t x[16])
{
    uint32_t key[8], x34[4], y1[4], y2[4];
    for (int j = 0; j < 4; j++)
        x34[j] = x[8 + j] ^ x[12 + j];
    block_encrypt(s, x34, x); /* key X1 || X2 */
    for (int j = 0; j < 4; j++)
        s[j] ^= x34[j];
    for (int j = 0; j < 4; j++) {
        key[j] = s[j];
        key[4 + j] = x[12 + j]; /* S || X4 */
    }
    block_encrypt(y1, x, key);
    for (int j = 0; j < 4; j++) {
        key[j] = ~s[j];
        key[4 + j] = x[8 + j]; /* (S xor 1^128) || X3 */
    }
    block_encrypt(y2, x + 4, key);
    for (int j = 0; j < 4; j++) {
        y1[j] ^= x[j];
        y2[j] ^= x[4 + j];
    }
    memcpy(y, y1, sizeof y1);
    memcpy(y + 4, y2, sizeof y2);
}

/* belt-hash (6.9) state: the block being filled, its h and the running XOR s of the S outputs. */
typedef struct {
    PyObject_HEAD
    uint32_t x[16];        /* x[0..7]: the current 32-octet block as words; x[8..15]: h */
    uint32_t sum[4];       /* s */
    uint8_t pending[32];   /* octets of a block not yet whole */
    Py_ssize_t pending_len;
    uint64_t length[2];    /* message length in octets, low then high 64 bits */
} BeltHashObject;

static void absorb(BeltHashObject *self, const uint8_t *block)
{
    uint32_t t[4];
    for (int j = 0; j < 8; j++)
        self->x[j] = load32(block + 4 * j);
    compress(t, self->x + 8, self->x);
    for (int j = 0; j < 4; j++)
        self->sum[j] ^= t[j];
}

static void hash_update(BeltHashObject *self, const uint8_t *data, Py_ssize_t size)
{
    uint64_t before = self->length[0];
    self->length[0] += (uint64_t)size;
    if (self->length[0] < before)
        self->length[1]++;
    if (self->pending_len) {
        Py_ssize_t take = 32 - self->pending_len < size ? 32 - self->pending_len : size;
        memcpy(self->pending + self->pending_len, data, (size_t)take);
        self->pending_len += take;
        data += take;
        size -= take;
        if (self->pending_len < 32)
            return;
        absorb(self, self->pending);
        self->pending_len = 0;
    }
    for (; size >= 32; data += 32, size -= 32)
        absorb(self, data);
    memcpy(self->pending, data, (size_t)size);
    self->pending_len = size;
}

/* The final steps on a copy, so digest() leaves the object usable: the last block padded with
 * zeros, then Y = second output of belt-compress(<|X|>_128 || s || h), |X| in bits. */
static void hash_final(const BeltHashObject *self, uint8_t out[32])
{
    BeltHashObject state = *self;
    uint32_t x[16], t[4];
    if (state.pending_len) {
        memset(state.pending + state.pending_len, 0, (size_t)(32 - state.pending_len));
        absorb(&state, state.pending);
    }
    uint64_t lo = state.length[0], hi = state.length[1];
    uint64_t bits_lo = lo << 3, bits_hi = (hi << 3) | (lo >> 61); /* octets * 8 mod 2^128 */
    x[0] = (uint32_t)bits_lo; x[1] = (uint32_t)(bits_lo >> 32);
    x[2] = (uint32_t)bits_hi; x[3] = (uint32_t)(bits_hi >> 32);
    memcpy(x + 4, state.sum, sizeof state.sum);
    memcpy(x + 8, state.x + 8, 8 * sizeof(uint32_t));
    compress(t, x + 8, x);
    for (int j = 0; j < 8; j++)
        store32(out + 4 * j, x[8 + j]);
}

static PyTypeObject BeltHashType;

static int BeltHash_init(BeltHashObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"data", NULL};
    Py_buffer data = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|y*:BeltHash", keywords, &data))
        return -1;
    memset(self->x, 0, sizeof self->x);
    for (int j = 0; j < 8; j++)
        self->x[8 + j] = load32(H + 4 * j);
    memset(self->sum, 0, sizeof self->sum);
    self->pending_len = 0;
    self->length[0] = self->length[1] = 0;
    if (data.obj) {
        hash_update(self, data.buf, data.len);
        PyBuffer_Release(&data);
    }
    return 0;
}

static PyObject *BeltHash_update(BeltHashObject *self, PyObject *arg)
{
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
        return NULL;
    hash_update(self, data.buf, data.len);
    PyBuffer_Release(&data);
    Py_RETURN_NONE;
}

static PyObject *BeltHash_digest(BeltHashObject *self, PyObject *Py_UNUSED(ignored))
{
    uint8_t out[32];
    hash_final(self, out);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *BeltHash_hexdigest(BeltHashObject *self, PyObject *Py_UNUSED(ignored))
{
    static const char digits[] = "0123456789abcdef";
    uint8_t out[32];
    char text[64];
    hash_final(self, out);
    for (int j = 0; j < 32; j++) {
        text[2 * j] = digits[out[j] >> 4];
        text[2 * j + 1] = digits[out[j] & 15];
    }
    return PyUnicode_FromStringAndSize(text, 64);
}

static PyObject *BeltHash_copy(BeltHashObject *self, PyObject *Py_UNUSED(ignored))
{
    BeltHashObject *other = PyObject_New(BeltHashObject, Py_TYPE(self));
    if (other == NULL)
        return NULL;
    memcpy(other->x, self->x, sizeof self->x);
    memcpy(other->sum, self->sum, sizeof self->sum);
    memcpy(other->pending, self->pending, sizeof self->pending);
    other->pending_len = self->pending_len;
    other->length[0] = self->length[0];
    other->length[1] = self->length[1];
    return (PyObject *)other;
}

static PyObject *BeltHash_name(PyObject *Py_UNUSED(self), void *Py_UNUSED(closure)) { return PyUnicode_FromString("belt-hash"); }
static PyObject *BeltHash_digest_size(PyObject *Py_UNUSED(self), void *Py_UNUSED(closure)) { return PyLong_FromLong(32); }
static PyObject *BeltHash_block_size(PyObject *Py_UNUSED(self), void *Py_UNUSED(closure)) { return PyLong_FromLong(32); }

static PyMethodDef BeltHash_methods[] = {
    {"update", (PyCFunction)BeltHash_update, METH_O, "Add octets to the message."},
    {"digest", (PyCFunction)BeltHash_digest, METH_NOARGS, "The 32-octet belt-hash of the message so far."},
    {"hexdigest", (PyCFunction)BeltHash_hexdigest, METH_NOARGS, "digest() as lowercase hex."},
    {"copy", (PyCFunction)BeltHash_copy, METH_NOARGS, "An independent copy of the state."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef BeltHash_getset[] = {
    {"name", BeltHash_name, NULL, NULL, NULL},
    {"digest_size", BeltHash_digest_size, NULL, NULL, NULL},
    {"block_size", BeltHash_block_size, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BeltHashType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "signing._belt.BeltHash",
    .tp_doc = "belt-hash (STB 34.101.31), incremental like hashlib's objects.",
    .tp_basicsize = sizeof(BeltHashObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)BeltHash_init,
    .tp_methods = BeltHash_methods,
    .tp_getset = BeltHash_getset,
};

static PyObject *encrypt_block(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer block, key;
    uint32_t x[4], k[8];
    uint8_t out[16];
    if (!PyArg_ParseTuple(args, "y*y*:encrypt_block", &block, &key))
        return NULL;
    if (block.len != 16 || key.len != 32) {
        PyErr_Format(PyExc_ValueError, block.len != 16 ? "a belt block is 16 octets, not %zd"
                                                       : "a belt key is 32 octets, not %zd",
                     block.len != 16 ? block.len : key.len);
        PyBuffer_Release(&block);
        PyBuffer_Release(&key);
        return NULL;
    }
    for (int j = 0; j < 4; j++)
        x[j] = load32((const uint8_t *)block.buf + 4 * j);
    for (int j = 0; j < 8; j++)
        k[j] = load32((const uint8_t *)key.buf + 4 * j);
    PyBuffer_Release(&block);
    PyBuffer_Release(&key);
    block_encrypt(x, x, k);
    for (int j = 0; j < 4; j++)
        store32(out + 4 * j, x[j]);
    return PyBytes_FromStringAndSize((const char *)out, 16);
}

static PyMethodDef module_methods[] = {
    {"encrypt_block", encrypt_block, METH_VARARGS, "belt-block: one 16-octet block under a 32-octet key."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef belt_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "signing._belt",
    .m_doc = "belt-block and belt-hash (STB 34.101.31) in C.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__belt(void)
{
    fill_tables();
    if (PyType_Ready(&BeltHashType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&belt_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&BeltHashType);
    if (PyModule_AddObject(module, "BeltHash", (PyObject *)&BeltHashType) < 0) {
        Py_DECREF(&BeltHashType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
