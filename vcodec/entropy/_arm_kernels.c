/* The integer ARM, compiled (vcodec/entropy/fixed_point.py lays out its weights and documents the bounds).
 *
 * Every value is an integer times a power of two held in a double: each product and partial sum is a
 * multiple of 2^-max(kw, kb - 8) below 2^(45 - kw) + 2^23, so a double holds it exactly in any order, with
 * or without fused multiply-adds, on any CPU: the indices are the same everywhere, which the range coder
 * needs (encoder and decoder must derive the same probabilities).
 *
 * Two entry points share one network: `table_indices` on given contexts, and `coding_parameters`, which
 * gathers each position's context from the latent canvas itself, gives all-zero contexts the network's
 * answer for the zero row without running it again, and returns the Laplace means and scales (a wavefront
 * of the decoder in one call).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WIDTH 64 /* vcodec.config: ARM contexts and hidden widths are at most 64 */
#define MAX_LAYERS 6
#define ROWS 8       /* rows run through the network together: two 4-double vectors per value */

/* 4-double vectors (GCC/Clang vector extensions: AVX2 in the x86-64-v3 clone, SSE2 pairs otherwise; the
   same double multiply-adds either way). */
typedef double vec4 __attribute__((vector_size(32)));

static inline vec4 load4(const double *p) {
    vec4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

typedef struct {
    Py_ssize_t layers;
    const int32_t *widths;   /* layers + 1 */
    const uint8_t *residual; /* layers */
    const double *weights;   /* per layer W^T (in, out), scaled as IntegerArm._scaled_layers */
    const double *biases;
    double act_limit;
    double low[2], high[2];  /* the output's clamps: (mean index, scale index) */
} Network;

/* One output's activation on the ROWS rows, from their sums: floored, then the output layer's clamp to the
   tables, or a hidden layer's ReLU, its residual input where it has one, and ACT_LIMIT. Branches are per
   layer, outside the loops over rows, so that these vectorise (floor is exact: vroundpd). */
static inline __attribute__((always_inline)) void activation(const Network *net, Py_ssize_t l, int last, int32_t o,
                                                             const double sum[ROWS], const double input[ROWS],
                                                             double out[ROWS]) {
    double v[ROWS];
    for (int r = 0; r < ROWS; r++) v[r] = floor(sum[r]);
    if (last) {
        const double low = net->low[o], high = net->high[o];
        for (int r = 0; r < ROWS; r++) out[r] = v[r] < low ? low : (v[r] > high ? high : v[r]);
        return;
    }
    for (int r = 0; r < ROWS; r++) v[r] = v[r] < 0.0 ? 0.0 : v[r];
    if (net->residual[l])
        for (int r = 0; r < ROWS; r++) v[r] += input[r];
    const double limit = net->act_limit;
    for (int r = 0; r < ROWS; r++) out[r] = v[r] > limit ? limit : v[r];
}

/* rows x[0 .. in)[ROWS] -> (mean index, scale index) of each of the ROWS rows. Outputs go 4 at a time (each
   loaded input feeds 4 of them), then one at a time. */
VECTOR_CLONES
static void run_rows(const Network *net, double x[MAX_WIDTH][ROWS], double indices[2][ROWS]) {
    double y[MAX_WIDTH][ROWS];
    const double *weight = net->weights, *bias = net->biases;
    for (Py_ssize_t l = 0; l < net->layers; l++) {
        const int32_t in = net->widths[l], out = net->widths[l + 1];
        const int last = l + 1 == net->layers;
        int32_t o = 0;
        for (; o + 4 <= out; o += 4) {
            vec4 sum[4][2];
            for (int k = 0; k < 4; k++) sum[k][0] = sum[k][1] = (vec4){0.0, 0.0, 0.0, 0.0} + bias[o + k];
            for (int32_t i = 0; i < in; i++) {
                const double *w = weight + i * out + o;
                const vec4 x0 = load4(x[i]), x1 = load4(x[i] + 4);
                for (int k = 0; k < 4; k++) {
                    sum[k][0] += w[k] * x0;
                    sum[k][1] += w[k] * x1;
                }
            }
            for (int k = 0; k < 4; k++) {
                double flat[ROWS];
                memcpy(flat, sum[k], sizeof flat);
                activation(net, l, last, o + k, flat, x[o + k], y[o + k]);
            }
        }
        for (; o < out; o++) {
            double sum[ROWS];
            for (int r = 0; r < ROWS; r++) sum[r] = bias[o];
            for (int32_t i = 0; i < in; i++) {
                const double k = weight[i * out + o];
                for (int r = 0; r < ROWS; r++) sum[r] += k * x[i][r];
            }
            activation(net, l, last, o, sum, x[o], y[o]);
        }
        weight += (Py_ssize_t)in * out;
        bias += out;
        if (last) {
            for (int r = 0; r < ROWS; r++) { indices[0][r] = y[0][r]; indices[1][r] = y[1][r]; }
        } else {
            for (int32_t k = 0; k < out; k++) memcpy(x[k], y[k], sizeof(double) * ROWS);
        }
    }
}

static int parse_network(Network *net, Py_buffer *widths, Py_buffer *residual, Py_buffer *weights,
                         Py_buffer *biases, Py_buffer *limits) {
    net->layers = widths->len / 4 - 1;
    net->widths = widths->buf;
    net->residual = residual->buf;
    net->weights = weights->buf;
    net->biases = biases->buf;
    if (net->layers < 1 || net->layers > MAX_LAYERS || residual->len < net->layers || limits->len < 5 * 8) {
        PyErr_SetString(PyExc_ValueError, "integer ARM: bad layer count or limits");
        return 0;
    }
    Py_ssize_t weight_count = 0, bias_count = 0;
    for (Py_ssize_t l = 0; l <= net->layers; l++)
        if (net->widths[l] < 1 || net->widths[l] > MAX_WIDTH) {
            PyErr_SetString(PyExc_ValueError, "integer ARM: a layer width is out of bounds");
            return 0;
        }
    for (Py_ssize_t l = 0; l < net->layers; l++) {
        weight_count += (Py_ssize_t)net->widths[l] * net->widths[l + 1];
        bias_count += net->widths[l + 1];
        if (net->residual[l] && net->widths[l] != net->widths[l + 1]) {
            PyErr_SetString(PyExc_ValueError, "integer ARM: a residual layer changes width");
            return 0;
        }
    }
    if (net->widths[net->layers] != 2 || weights->len < weight_count * 8 || biases->len < bias_count * 8) {
        PyErr_SetString(PyExc_ValueError, "integer ARM: weights or biases do not match the widths");
        return 0;
    }
    const double *limit = limits->buf; /* act_limit, mean low, scale low, mean high, scale high */
    net->act_limit = limit[0];
    net->low[0] = limit[1]; net->low[1] = limit[2];
    net->high[0] = limit[3]; net->high[1] = limit[4];
    return 1;
}

/* table_indices(contexts int32 (n, C), widths, residual, weights, biases, limits, mean_index int64 (n),
   scale_index int64 (n)) */
static PyObject *table_indices(PyObject *self, PyObject *args) {
    Py_buffer contexts, widths, residual, weights, biases, limits, means, scales;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*w*w*", &contexts, &widths, &residual, &weights, &biases, &limits,
                          &means, &scales))
        return NULL;
    PyObject *result = NULL;
    Network net;
    if (!parse_network(&net, &widths, &residual, &weights, &biases, &limits)) goto done;
    const Py_ssize_t c = net.widths[0], n = means.len / 8;
    if (contexts.len != n * c * 4 || scales.len != n * 8) {
        PyErr_SetString(PyExc_ValueError, "table_indices: contexts and outputs disagree in size");
        goto done;
    }
    const int32_t *context = contexts.buf;
    int64_t *mean_index = means.buf, *scale_index = scales.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t start = 0; start < n; start += ROWS) {
        const int count = n - start < ROWS ? (int)(n - start) : ROWS;
        double x[MAX_WIDTH][ROWS], indices[2][ROWS];
        for (Py_ssize_t i = 0; i < c; i++)
            for (int r = 0; r < ROWS; r++) x[i][r] = r < count ? (double)context[(start + r) * c + i] : 0.0;
        run_rows(&net, x, indices);
        for (int r = 0; r < count; r++) {
            mean_index[start + r] = (int64_t)indices[0][r];
            scale_index[start + r] = (int64_t)indices[1][r];
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&contexts); PyBuffer_Release(&widths); PyBuffer_Release(&residual);
    PyBuffer_Release(&weights); PyBuffer_Release(&biases); PyBuffer_Release(&limits);
    PyBuffer_Release(&means); PyBuffer_Release(&scales);
    return result;
}

/* The Laplace mean and scale of n positions of the canvas, their contexts gathered at position + offsets;
   all-zero contexts take (zero_mean, zero_scale), the network's answer for the zero row. `near` (or NULL):
   near[q] != 0 where a non-zero latent lies in q's context; a position without the mark has an all-zero
   context and is answered without gathering it (the decoder marks as it decodes: a sparse frame's
   positions then cost one load instead of one per neighbour). */
static void parameters_of(const Network *net, const int16_t *latent, const uint8_t *near, const int32_t *position,
                          Py_ssize_t n, const int64_t *offset, double mean_step, const double *scale_table,
                          double zero_mean, double zero_scale, double *mean, double *scale) {
    const Py_ssize_t c = net->widths[0];
    double x[MAX_WIDTH][ROWS], indices[2][ROWS];
    Py_ssize_t rows[ROWS];
    int count = 0;
    for (Py_ssize_t p = 0; p <= n; p++) {
        if (p < n) {
            int any = 0;
            if (near && !near[position[p]]) {
                mean[p] = zero_mean;
                scale[p] = zero_scale;
                continue;
            }
            for (Py_ssize_t i = 0; i < c; i++) {
                const int16_t v = latent[position[p] + offset[i]];
                x[i][count] = (double)v;
                any |= v != 0;
            }
            if (!any) {
                mean[p] = zero_mean;
                scale[p] = zero_scale;
                continue;
            }
            rows[count++] = p;
        }
        if (count == ROWS || (p == n && count > 0)) {
            for (int r = count; r < ROWS; r++)
                for (Py_ssize_t i = 0; i < c; i++) x[i][r] = 0.0;
            run_rows(net, x, indices);
            for (int r = 0; r < count; r++) {
                mean[rows[r]] = indices[0][r] * mean_step;
                scale[rows[r]] = scale_table[(Py_ssize_t)indices[1][r]];
            }
            count = 0;
        }
    }
}

/* The zero row's (mean, scale), by the same arithmetic as any other row. */
static void zero_context(const Network *net, double mean_step, const double *scale_table, double *mean, double *scale) {
    double x[MAX_WIDTH][ROWS], indices[2][ROWS];
    memset(x, 0, sizeof(x));
    run_rows(net, x, indices);
    *mean = indices[0][0] * mean_step;
    *scale = scale_table[(Py_ssize_t)indices[1][0]];
}

/* Whether every position + offset of positions[0 .. n) lies in [0, samples); sets the error if not. */
static int contexts_inside(const int32_t *position, Py_ssize_t n, const int64_t *offset, Py_ssize_t c,
                           Py_ssize_t samples) {
    if (n == 0) return 1;
    int64_t first = position[0], last = position[0], low = offset[0], high = offset[0];
    for (Py_ssize_t p = 1; p < n; p++) {
        first = position[p] < first ? position[p] : first;
        last = position[p] > last ? position[p] : last;
    }
    for (Py_ssize_t i = 1; i < c; i++) {
        low = offset[i] < low ? offset[i] : low;
        high = offset[i] > high ? offset[i] : high;
    }
    if (first + low < 0 || last + high >= samples) {
        PyErr_SetString(PyExc_ValueError, "a context lies outside the latent canvas");
        return 0;
    }
    return 1;
}

/* coding_parameters(canvas int16, positions int32 (n), offsets int64 (C), widths, residual, weights, biases,
   limits, mean_step, scale_table float64, means float64 (n), scales float64 (n)) */
static PyObject *coding_parameters(PyObject *self, PyObject *args) {
    Py_buffer canvas, positions, offsets, widths, residual, weights, biases, limits, table, means, scales;
    double mean_step;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*dy*w*w*", &canvas, &positions, &offsets, &widths, &residual,
                          &weights, &biases, &limits, &mean_step, &table, &means, &scales))
        return NULL;
    PyObject *result = NULL;
    Network net;
    if (!parse_network(&net, &widths, &residual, &weights, &biases, &limits)) goto done;
    const Py_ssize_t c = net.widths[0], n = positions.len / 4, samples = canvas.len / 2, entries = table.len / 8;
    if (offsets.len != c * 8 || means.len < n * 8 || scales.len < n * 8 || net.high[1] >= (double)entries ||
        net.low[1] < 0.0) {
        PyErr_SetString(PyExc_ValueError, "coding_parameters: offsets, outputs or table disagree in size");
        goto done;
    }
    if (!contexts_inside(positions.buf, n, offsets.buf, c, samples)) goto done;
    Py_BEGIN_ALLOW_THREADS
    double zero_mean, zero_scale;
    zero_context(&net, mean_step, table.buf, &zero_mean, &zero_scale);
    parameters_of(&net, canvas.buf, NULL, positions.buf, n, offsets.buf, mean_step, table.buf, zero_mean, zero_scale,
                  means.buf, scales.buf);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&canvas); PyBuffer_Release(&positions); PyBuffer_Release(&offsets);
    PyBuffer_Release(&widths); PyBuffer_Release(&residual); PyBuffer_Release(&weights);
    PyBuffer_Release(&biases); PyBuffer_Release(&limits); PyBuffer_Release(&table);
    PyBuffer_Release(&means); PyBuffer_Release(&scales);
    return result;
}

static double seconds_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

/* decode_wavefronts(canvas int16 (writable), order int32, step_starts int64, streams, offsets int64, widths,
   residual, weights, biases, limits, mean_step, scale_table, means float64 (len(order)), scales float64
   (len(order)), decode) -> (network seconds, decode seconds).

   Wavefront after wavefront, substream after substream: the Laplace of each position order[lo .. hi) into
   means[lo .. hi) and scales[lo .. hi), then decode(stream, lo, hi) (the range decoder, in Python) returns
   their int32 symbols, which go into the canvas. Positions of one wavefront do not read each other, so
   this is the order the encoder's streams hold them in. The Python loop it replaces cost ~15 us a step. */
static PyObject *decode_wavefronts(PyObject *self, PyObject *args) {
    Py_buffer canvas, order, starts, offsets, widths, residual, weights, biases, limits, table, means, scales;
    Py_ssize_t streams;
    double mean_step;
    PyObject *decode;
    if (!PyArg_ParseTuple(args, "w*y*y*ny*y*y*y*y*y*dy*w*w*O", &canvas, &order, &starts, &streams, &offsets, &widths,
                          &residual, &weights, &biases, &limits, &mean_step, &table, &means, &scales, &decode))
        return NULL;
    PyObject *result = NULL;
    Network net;
    uint8_t *near = NULL;
    double network_seconds = 0.0, decode_seconds = 0.0;
    if (!parse_network(&net, &widths, &residual, &weights, &biases, &limits)) goto done;
    const Py_ssize_t c = net.widths[0], n = order.len / 4, samples = canvas.len / 2, entries = table.len / 8;
    const Py_ssize_t bounds = starts.len / 8;
    const int64_t *start = starts.buf;
    if (offsets.len != c * 8 || means.len < n * 8 || scales.len < n * 8 || net.high[1] >= (double)entries ||
        net.low[1] < 0.0 || streams < 1 || bounds < 1 || (bounds - 1) % streams || start[0] != 0 ||
        start[bounds - 1] != n) {
        PyErr_SetString(PyExc_ValueError, "decode_wavefronts: order, steps, offsets or outputs disagree");
        goto done;
    }
    for (Py_ssize_t b = 1; b < bounds; b++)
        if (start[b] < start[b - 1]) {
            PyErr_SetString(PyExc_ValueError, "decode_wavefronts: steps out of order");
            goto done;
        }
    if (!contexts_inside(order.buf, n, offsets.buf, c, samples)) goto done;
    int16_t *latent = canvas.buf;
    const int32_t *position = order.buf;
    const int64_t *offset = offsets.buf;
    double zero_mean, zero_scale;
    zero_context(&net, mean_step, table.buf, &zero_mean, &zero_scale);
    /* near[q]: a decoded non-zero latent lies in q's context. A symbol at p marks p - offset (its
       dependents), which can lie past the canvas's end (never read there): the margin holds them. */
    int64_t reach = 0;
    for (Py_ssize_t i = 0; i < c; i++) {
        if (offset[i] >= 0) { /* a causal neighbour lies before its position in the canvas */
            PyErr_SetString(PyExc_ValueError, "decode_wavefronts: a context offset is not causal");
            goto done;
        }
        reach = -offset[i] > reach ? -offset[i] : reach;
    }
    near = calloc((size_t)(samples + reach + 1), 1);
    if (!near) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t b = 0; b + 1 < bounds; b++) {
        const Py_ssize_t lo = start[b], hi = start[b + 1];
        if (hi == lo) continue;
        double begun = seconds_now();
        parameters_of(&net, latent, near, position + lo, hi - lo, offsets.buf, mean_step, table.buf, zero_mean, zero_scale,
                      (double *)means.buf + lo, (double *)scales.buf + lo);
        double now = seconds_now();
        network_seconds += now - begun;
        PyObject *symbols = PyObject_CallFunction(decode, "nnn", b % streams, lo, hi);
        if (!symbols) goto done;
        Py_buffer decoded;
        if (PyObject_GetBuffer(symbols, &decoded, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            Py_DECREF(symbols);
            goto done;
        }
        const int ok = decoded.len == (hi - lo) * 4 && decoded.itemsize == 4;
        if (ok) {
            const int32_t *value = decoded.buf;
            for (Py_ssize_t p = lo; p < hi; p++) {
                latent[position[p]] = (int16_t)value[p - lo];
                if (value[p - lo] != 0)
                    for (Py_ssize_t i = 0; i < c; i++) near[position[p] - offset[i]] = 1;
            }
        }
        PyBuffer_Release(&decoded);
        Py_DECREF(symbols);
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "decode_wavefronts: decode() did not return one int32 per position");
            goto done;
        }
        decode_seconds += seconds_now() - now;
    }
    result = Py_BuildValue("(dd)", network_seconds, decode_seconds);
done:
    free(near);
    PyBuffer_Release(&canvas); PyBuffer_Release(&order); PyBuffer_Release(&starts); PyBuffer_Release(&offsets);
    PyBuffer_Release(&widths); PyBuffer_Release(&residual); PyBuffer_Release(&weights);
    PyBuffer_Release(&biases); PyBuffer_Release(&limits); PyBuffer_Release(&table);
    PyBuffer_Release(&means); PyBuffer_Release(&scales);
    return result;
}

/* wavefront_order(base int64 (wavefronts, bands), rows int64 (bands), widths int64 (bands), tops int64
   (bands), width, radius, order int32 (out)): order[base[t, b] + i] = flat canvas index of row i, column j
   of band b, for t = j + (radius + 1) i: the latent coder's coding order, written by counting
   (vcodec.entropy.latent_coder._wavefront_order computes `base`). */
static PyObject *wavefront_order(PyObject *self, PyObject *args) {
    Py_buffer base, rows, widths, tops, order;
    Py_ssize_t width, radius;
    if (!PyArg_ParseTuple(args, "y*y*y*y*nnw*", &base, &rows, &widths, &tops, &width, &radius, &order)) return NULL;
    PyObject *result = NULL;
    const Py_ssize_t bands = rows.len / 8, entries = base.len / 8, n = order.len / 4, step = radius + 1;
    const int64_t *start = base.buf, *row_count = rows.buf, *band_width = widths.buf, *top = tops.buf;
    int32_t *out = order.buf;
    if (bands < 1 || widths.len != bands * 8 || tops.len != bands * 8 || entries % bands || radius < 0 || width < 1) {
        PyErr_SetString(PyExc_ValueError, "wavefront_order: band tables disagree");
        goto done;
    }
    const Py_ssize_t wavefronts = entries / bands;
    for (Py_ssize_t b = 0; b < bands; b++) { /* every t and destination in range, before writing */
        if (row_count[b] < 0 || band_width[b] < 0 || top[b] < 0 || band_width[b] + 2 * radius > width ||
            (row_count[b] > 0 && band_width[b] > 0 &&
             (band_width[b] - 1 + step * (row_count[b] - 1) >= wavefronts ||
              (top[b] + row_count[b]) * (int64_t)width > INT32_MAX))) {
            PyErr_SetString(PyExc_ValueError, "wavefront_order: a band lies outside the tables or the canvas");
            goto done;
        }
    }
    for (Py_ssize_t b = 0; b < bands; b++)
        for (int64_t i = 0; i < row_count[b]; i++)
            for (int64_t j = 0; j < band_width[b]; j++) {
                const int64_t at = start[(j + step * i) * bands + b] + i;
                if (at < 0 || at >= n) {
                    PyErr_SetString(PyExc_ValueError, "wavefront_order: a position falls outside the order");
                    goto done;
                }
                out[at] = (int32_t)((top[b] + i) * width + radius + j);
            }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&base); PyBuffer_Release(&rows); PyBuffer_Release(&widths); PyBuffer_Release(&tops);
    PyBuffer_Release(&order);
    return result;
}

static PyMethodDef methods[] = {
    {"table_indices", table_indices, METH_VARARGS,
     "table_indices(contexts, widths, residual, weights, biases, limits, mean_index, scale_index): the integer "
     "ARM on (n, C) int32 contexts -> int64 table indices, written into the last two arrays."},
    {"coding_parameters", coding_parameters, METH_VARARGS,
     "coding_parameters(canvas, positions, offsets, widths, residual, weights, biases, limits, mean_step, "
     "scale_table, means, scales): each position's context gathered from the int16 canvas -> Laplace mean and "
     "scale (float64), written into the last two arrays."},
    {"wavefront_order", wavefront_order, METH_VARARGS,
     "wavefront_order(base, rows, widths, tops, width, radius, order): the coding order of the canvas's bands "
     "into order (int32), from the per-(wavefront, band) starts minus first rows in base."},
    {"decode_wavefronts", decode_wavefronts, METH_VARARGS,
     "decode_wavefronts(canvas, order, step_starts, streams, offsets, widths, residual, weights, biases, limits, "
     "mean_step, scale_table, means, scales, decode): the decoder's wavefront loop; decode(stream, lo, hi) range-"
     "decodes positions lo..hi from means[lo:hi], scales[lo:hi]. Returns (network seconds, decode seconds)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_arm_kernels", "The integer ARM, compiled.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__arm_kernels(void) { return PyModule_Create(&module); }
