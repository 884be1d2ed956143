/* npy.c - .npy float32 matrices: streaming atomic writer and a strict reader. */
#include "npy.h"

#include <stdlib.h>
#include <string.h>

#define NPY_HEADER 128 /* magic(6) + version(2) + len(2) + dict padded to 128 total */

static void npy_header(char out[NPY_HEADER], size_t rows, size_t cols) {
    memset(out, ' ', NPY_HEADER);
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    uint16_t hl = NPY_HEADER - 10;
    out[8] = (char)(hl & 0xff);
    out[9] = (char)(hl >> 8);
    char dict[NPY_HEADER];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                     rows, cols);
    memcpy(out + 10, dict, (size_t)n);
    out[NPY_HEADER - 1] = '\n';
}

int et_npy_begin(et_npy_writer *w, const char *path, size_t cols, et_error *err) {
    memset(w, 0, sizeof(*w));
    int rc = et_afile_open(&w->f, path, err);
    if (rc) return rc;
    w->cols = cols;
    char h[NPY_HEADER];
    npy_header(h, 0, cols);
    if (fwrite(h, 1, NPY_HEADER, w->f.fp) != NPY_HEADER) w->f.failed = 1;
    return ET_OK;
}

int et_npy_append(et_npy_writer *w, const float *rows, size_t n, et_error *err) {
    size_t k;
    if (!et_size_mul(n, w->cols, &k)) return et_err_set(err, ET_EINVAL, "npy: too many values");
    if (k && fwrite(rows, sizeof(float), k, w->f.fp) != k) {
        w->f.failed = 1;
        return et_err_set(err, ET_EIO, "%s: write failed", w->f.path);
    }
    w->rows += n;
    return ET_OK;
}

int et_npy_finish(et_npy_writer *w, et_error *err) {
    char h[NPY_HEADER];
    npy_header(h, w->rows, w->cols);
    if (fseek(w->f.fp, 0, SEEK_SET) != 0 || fwrite(h, 1, NPY_HEADER, w->f.fp) != NPY_HEADER)
        w->f.failed = 1;
    return et_afile_commit(&w->f, err);
}

void et_npy_abort(et_npy_writer *w) { et_afile_abort(&w->f); }

int et_npy_write(const char *path, const float *data, size_t rows, size_t cols, et_error *err) {
    et_npy_writer w;
    int rc = et_npy_begin(&w, path, cols, err);
    if (rc) return rc;
    if ((rc = et_npy_append(&w, data, rows, err))) {
        et_npy_abort(&w);
        return rc;
    }
    return et_npy_finish(&w, err);
}

/* Finds `'key':` in the header dict and returns the text after it. */
static const char *dict_value(const char *d, const char *key) {
    char k[32];
    snprintf(k, sizeof k, "'%s'", key);
    const char *p = strstr(d, k);
    if (!p) return NULL;
    p += strlen(k);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

int et_npy_parse(const char *buf, size_t len, const char *what, float **data, size_t *rows,
                 size_t *cols, et_error *err) {
    *data = NULL;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6))
        return et_err_set(err, ET_EFORMAT, "%s: not a .npy file (bad magic)", what);
    int major = (unsigned char)buf[6];
    size_t hl, off;
    if (major == 1) {
        hl = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12) return et_err_set(err, ET_EFORMAT, "%s: truncated header", what);
        hl = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8 |
             (size_t)(unsigned char)buf[10] << 16 | (size_t)(unsigned char)buf[11] << 24;
        off = 12;
    } else {
        return et_err_set(err, ET_EFORMAT, "%s: unsupported .npy version %d", what, major);
    }
    if (hl > len - off) return et_err_set(err, ET_EFORMAT, "%s: header runs past the end of the file", what);
    char *d = et_strndup(buf + off, hl, err);
    if (!d) return ET_ENOMEM;
    int rc = ET_OK;
    const char *v = dict_value(d, "descr");
    if (!v || strncmp(v, "'<f4'", 5)) {
        rc = et_err_set(err, ET_EFORMAT, "%s: field 'descr': expected '<f4' (float32)", what);
        goto done;
    }
    v = dict_value(d, "fortran_order");
    if (!v || strncmp(v, "False", 5)) {
        rc = et_err_set(err, ET_EFORMAT, "%s: field 'fortran_order': expected False", what);
        goto done;
    }
    v = dict_value(d, "shape");
    if (!v || *v != '(') {
        rc = et_err_set(err, ET_EFORMAT, "%s: field 'shape': expected a tuple", what);
        goto done;
    }
    size_t dims[2] = {0, 0}, nd = 0;
    v++;
    for (;;) {
        while (*v == ' ' || *v == ',') v++;
        if (*v == ')') break;
        char *end;
        unsigned long long x = strtoull(v, &end, 10);
        if (end == v || nd >= 2 || x > (1ull << 40)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: field 'shape': expected 1 or 2 sizes", what);
            goto done;
        }
        dims[nd++] = (size_t)x;
        v = end;
    }
    if (nd == 0) {
        rc = et_err_set(err, ET_EFORMAT, "%s: field 'shape': scalar arrays are not supported", what);
        goto done;
    }
    *rows = nd == 2 ? dims[0] : 1;
    *cols = nd == 2 ? dims[1] : dims[0];
    size_t n, bytes;
    if (!et_size_mul(*rows, *cols, &n) || !et_size_mul(n, 4, &bytes) || bytes != len - off - hl) {
        rc = et_err_set(err, ET_EFORMAT, "%s: data size %zu bytes does not match shape (%zu, %zu)", what,
                        len - off - hl, *rows, *cols);
        goto done;
    }
    *data = et_malloc(bytes ? bytes : 1, err);
    if (!*data) {
        rc = ET_ENOMEM;
        goto done;
    }
    memcpy(*data, buf + off + hl, bytes);
done:
    free(d);
    return rc;
}

int et_npy_read(const char *path, float **data, size_t *rows, size_t *cols, et_error *err) {
    char *buf;
    size_t len;
    int rc = et_read_file(path, 0, &buf, &len, err);
    if (rc) return rc;
    rc = et_npy_parse(buf, len, path, data, rows, cols, err);
    free(buf);
    return rc;
}
