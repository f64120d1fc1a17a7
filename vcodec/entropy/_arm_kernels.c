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

typedef long long mask4 __attribute__((vector_size(32))); /* a vec4 comparison: -1 where true, else 0 */

static inline vec4 broadcast4(double value) { return (vec4){0.0, 0.0, 0.0, 0.0} + value; }

static inline vec4 select4(mask4 where, vec4 yes, vec4 no) { return (vec4)((where & (mask4)yes) | (~where & (mask4)no)); }

/* floor, exact for |v| < 2^51 (every sum here is below 2^46): adding and subtracting 1.5 * 2^52 rounds to the
   nearest integer, then one less where that went up. No libm call, so the loops stay in vectors. */
static inline vec4 floor4(vec4 v) {
    const vec4 shift = broadcast4(6755399441055744.0);
    const vec4 nearest = (v + shift) - shift;
    return nearest - (vec4)((nearest > v) & (mask4)broadcast4(1.0));
}

/* One output's activation on the ROWS rows, from their sums (two vectors of 4): floored, then the output
   layer's clamp to the tables, or a hidden layer's ReLU, its residual input where it has one, and
   ACT_LIMIT. */
static inline __attribute__((always_inline)) void activation(const Network *net, Py_ssize_t l, int last, int32_t o,
                                                             vec4 sum0, vec4 sum1, const double input[ROWS],
                                                             double out[ROWS]) {
    vec4 v[2] = {floor4(sum0), floor4(sum1)};
    if (last) {
        const vec4 low = broadcast4(net->low[o]), high = broadcast4(net->high[o]);
        for (int h = 0; h < 2; h++) v[h] = select4(v[h] < low, low, select4(v[h] > high, high, v[h]));
    } else {
        const vec4 zero = broadcast4(0.0), limit = broadcast4(net->act_limit);
        for (int h = 0; h < 2; h++) v[h] = select4(v[h] < zero, zero, v[h]);
        if (net->residual[l]) {
            v[0] += load4(input);
            v[1] += load4(input + 4);
        }
        for (int h = 0; h < 2; h++) v[h] = select4(v[h] > limit, limit, v[h]);
    }
    memcpy(out, v, sizeof(double) * ROWS);
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
            for (int k = 0; k < 4; k++) sum[k][0] = sum[k][1] = broadcast4(bias[o + k]);
            for (int32_t i = 0; i < in; i++) {
                const double *w = weight + i * out + o;
                const vec4 x0 = load4(x[i]), x1 = load4(x[i] + 4);
                for (int k = 0; k < 4; k++) {
                    sum[k][0] += w[k] * x0;
                    sum[k][1] += w[k] * x1;
                }
            }
            for (int k = 0; k < 4; k++) activation(net, l, last, o + k, sum[k][0], sum[k][1], x[o + k], y[o + k]);
        }
        for (; o < out; o++) {
            vec4 sum0 = broadcast4(bias[o]), sum1 = sum0;
            for (int32_t i = 0; i < in; i++) {
                const double k = weight[i * out + o];
                sum0 += k * load4(x[i]);
                sum1 += k * load4(x[i] + 4);
            }
            activation(net, l, last, o, sum0, sum1, x[o], y[o]);
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

/* A position's coding parameters: its Laplace, and its row of the table model (-1: none). */
typedef struct {
    double mean, scale;
    int32_t row;
} Answer;

/* Which positions have a row of the table model (frame format 7, vcodec.entropy.narrow_model): scale indices
   below `scales` (0: none, earlier formats), one row per mean fraction. */
typedef struct {
    int64_t scales, fractions;
} Rows;

/* The row of (mean index, scale index): scale index * fractions + the mean's fraction counted from -1/2, the
   mean being centre + (fraction - fractions / 2) / fractions with the centre its rounding (ties up). */
static inline int32_t table_row(const Rows *rows, double mean_index, double scale_index) {
    if ((int64_t)scale_index >= rows->scales) return -1;
    const int64_t half = rows->fractions / 2, shifted = (int64_t)mean_index + half;
    const int64_t centre = shifted >= 0 ? shifted / rows->fractions : -((rows->fractions - 1 - shifted) / rows->fractions);
    return (int32_t)((int64_t)scale_index * rows->fractions + shifted - rows->fractions * centre);
}

/* The Laplace mean and scale (and, given `row`, the table-model row) of n positions of the canvas, their
   contexts gathered at position + offsets; all-zero contexts take `zero`, the network's answer for the zero row. `near` (or NULL):
   near[q] != 0 where a non-zero latent lies in q's context; a position without the mark has an all-zero
   context and is answered without gathering it (the decoder marks as it decodes: a sparse frame's
   positions then cost one load instead of one per neighbour). */
static void parameters_of(const Network *net, const int16_t *latent, const uint8_t *near, const int32_t *position,
                          Py_ssize_t n, const int64_t *offset, double mean_step, const double *scale_table,
                          const Answer *zero, const Rows *rows, double *mean, double *scale, int32_t *row) {
    const Py_ssize_t c = net->widths[0];
    double x[MAX_WIDTH][ROWS], indices[2][ROWS];
    Py_ssize_t picked[ROWS];
    int count = 0;
    for (Py_ssize_t p = 0; p <= n; p++) {
        if (p < n) {
            int any = 0;
            if (near && !near[position[p]]) {
                mean[p] = zero->mean;
                scale[p] = zero->scale;
                if (row) row[p] = zero->row;
                continue;
            }
            for (Py_ssize_t i = 0; i < c; i++) {
                const int16_t v = latent[position[p] + offset[i]];
                x[i][count] = (double)v;
                any |= v != 0;
            }
            if (!any) {
                mean[p] = zero->mean;
                scale[p] = zero->scale;
                if (row) row[p] = zero->row;
                continue;
            }
            picked[count++] = p;
        }
        if (count == ROWS || (p == n && count > 0)) {
            for (int r = count; r < ROWS; r++)
                for (Py_ssize_t i = 0; i < c; i++) x[i][r] = 0.0;
            run_rows(net, x, indices);
            for (int r = 0; r < count; r++) {
                mean[picked[r]] = indices[0][r] * mean_step;
                scale[picked[r]] = scale_table[(Py_ssize_t)indices[1][r]];
                if (row) row[picked[r]] = table_row(rows, indices[0][r], indices[1][r]);
            }
            count = 0;
        }
    }
}

/* The zero row's answer, by the same arithmetic as any other row. */
static Answer zero_context(const Network *net, double mean_step, const double *scale_table, const Rows *rows) {
    double x[MAX_WIDTH][ROWS], indices[2][ROWS];
    memset(x, 0, sizeof(x));
    run_rows(net, x, indices);
    Answer zero = {indices[0][0] * mean_step, scale_table[(Py_ssize_t)indices[1][0]],
                   table_row(rows, indices[0][0], indices[1][0])};
    return zero;
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
   limits, mean_step, scale_table float64, narrow_scales, means float64 (n), scales float64 (n), rows int32 (n))
   narrow_scales: scale indices below it have rows of the table model (0: none; every row is then -1). */
static PyObject *coding_parameters(PyObject *self, PyObject *args) {
    Py_buffer canvas, positions, offsets, widths, residual, weights, biases, limits, table, means, scales, rows;
    double mean_step;
    Py_ssize_t narrow_scales;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*dy*nw*w*w*", &canvas, &positions, &offsets, &widths, &residual,
                          &weights, &biases, &limits, &mean_step, &table, &narrow_scales, &means, &scales, &rows))
        return NULL;
    PyObject *result = NULL;
    Network net;
    if (!parse_network(&net, &widths, &residual, &weights, &biases, &limits)) goto done;
    const Py_ssize_t c = net.widths[0], n = positions.len / 4, samples = canvas.len / 2, entries = table.len / 8;
    if (offsets.len != c * 8 || means.len < n * 8 || scales.len < n * 8 || rows.len < n * 4 ||
        net.high[1] >= (double)entries || net.low[1] < 0.0 || narrow_scales < 0 || !(mean_step > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "coding_parameters: offsets, outputs or table disagree in size");
        goto done;
    }
    if (!contexts_inside(positions.buf, n, offsets.buf, c, samples)) goto done;
    Py_BEGIN_ALLOW_THREADS
    const Rows row_rule = {narrow_scales, (int64_t)(1.0 / mean_step)};
    const Answer zero = zero_context(&net, mean_step, table.buf, &row_rule);
    parameters_of(&net, canvas.buf, NULL, positions.buf, n, offsets.buf, mean_step, table.buf, &zero, &row_rule,
                  means.buf, scales.buf, rows.buf);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&canvas); PyBuffer_Release(&positions); PyBuffer_Release(&offsets);
    PyBuffer_Release(&widths); PyBuffer_Release(&residual); PyBuffer_Release(&weights);
    PyBuffer_Release(&biases); PyBuffer_Release(&limits); PyBuffer_Release(&table);
    PyBuffer_Release(&means); PyBuffer_Release(&scales); PyBuffer_Release(&rows);
    return result;
}

static double seconds_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

/* What the decoder's loop works on: the network, the canvas, the order and where its steps start; the table
   model (format 7) and the scratch arrays whose views the range decoder reads in Python. */
typedef struct {
    const Network *net;
    int16_t *latent;
    uint8_t *near;
    const int32_t *position;
    const int64_t *start;    /* step_starts: (wavefront, substream) b holds order[start[b] .. start[b + 1]) */
    Py_ssize_t steps, streams, c, width;
    const int64_t *offset;
    double mean_step;
    Answer zero;
    Rows rows;               /* rows.scales == 0 (formats 1-6): every symbol under its Laplace, in order */
    const double *table;     /* the Laplace scale table */
    const double *model;     /* the table model: `alphabet` probabilities a row, the last one the escape */
    Py_ssize_t alphabet, radius, low_value, high_value;
    double *mean, *scale;    /* each position's (with the thread ahead) or the step's (one thread) */
    int32_t *row;
    double *probabilities;   /* scratch (longest step x alphabet): the rows of one table call */
    double *call_mean, *call_scale; /* scratch (longest step): the Laplaces of one Laplace call */
    Py_ssize_t *picked;      /* scratch (longest step): the positions of one Laplace call */
    Py_ssize_t *deferred;    /* scratch (longest step): the step's positions coded after its table symbols */
} Wavefronts;

enum { TABLE_SYMBOLS = 0, LAPLACE_SYMBOLS = 1 };

/* decode(stream, kind, count) (Python: the range decoder, reading the scratch arrays' first count entries)
   -> its int32 symbols in `decoded`, or NULL with the error set. */
static PyObject *call_decoder(PyObject *decode, Py_ssize_t stream, int kind, Py_ssize_t count, Py_buffer *decoded) {
    PyObject *symbols = PyObject_CallFunction(decode, "nin", stream, kind, count);
    if (!symbols) return NULL;
    if (PyObject_GetBuffer(symbols, decoded, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        Py_DECREF(symbols);
        return NULL;
    }
    if (decoded->len != count * 4 || decoded->itemsize != 4) {
        PyBuffer_Release(decoded);
        Py_DECREF(symbols);
        PyErr_SetString(PyExc_ValueError, "decode_wavefronts: decode() did not return one int32 per position");
        return NULL;
    }
    return symbols;
}

/* Position p's symbol: into in_order[p] for the thread that owns the canvas (decode_ahead), else into the
   canvas, marking its dependents in `near` where it is not zero. */
static inline void put_symbol(const Wavefronts *w, int16_t *in_order, Py_ssize_t p, int32_t value) {
    if (in_order) {
        in_order[p] = (int16_t)value;
        return;
    }
    w->latent[w->position[p]] = (int16_t)value;
    if (value != 0)
        for (Py_ssize_t i = 0; i < w->c; i++) w->near[w->position[p] - w->offset[i]] = 1;
}

/* The Laplace symbols of the positions list[0 .. count) (their parameters at index p - base). */
static int decode_laplace(const Wavefronts *w, PyObject *decode, Py_ssize_t stream, const Py_ssize_t *list,
                          Py_ssize_t count, Py_ssize_t base, int16_t *in_order) {
    if (count == 0) return 1;
    for (Py_ssize_t j = 0; j < count; j++) {
        w->call_mean[j] = w->mean[list[j] - base];
        w->call_scale[j] = w->scale[list[j] - base];
    }
    Py_buffer decoded;
    PyObject *symbols = call_decoder(decode, stream, LAPLACE_SYMBOLS, count, &decoded);
    if (!symbols) return 0;
    const int32_t *value = decoded.buf;
    for (Py_ssize_t j = 0; j < count; j++) put_symbol(w, in_order, list[j], value[j]);
    PyBuffer_Release(&decoded);
    Py_DECREF(symbols);
    return 1;
}

/* Positions [lo, hi) of one step, in coding order, their parameters at index p - base. Formats 1-6: all under
   their Laplace, now. Format 7: those with a row under the table model now; those without, and the escapes,
   go to w->deferred (in coding order, from *deferred_count on) for the Laplace call that ends the step. */
static int decode_chunk(const Wavefronts *w, PyObject *decode, Py_ssize_t stream, Py_ssize_t lo, Py_ssize_t hi,
                        Py_ssize_t base, int16_t *in_order, Py_ssize_t *deferred_count) {
    if (w->rows.scales == 0) {
        for (Py_ssize_t p = lo; p < hi; p++) w->picked[p - lo] = p;
        return decode_laplace(w, decode, stream, w->picked, hi - lo, base, in_order);
    }
    const Py_ssize_t alphabet = w->alphabet;
    Py_ssize_t count = 0;
    for (Py_ssize_t p = lo; p < hi; p++) {
        const int32_t row = w->row[p - base];
        if (row >= 0) memcpy(w->probabilities + count++ * alphabet, w->model + (Py_ssize_t)row * alphabet,
                             sizeof(double) * (size_t)alphabet);
    }
    Py_buffer decoded;
    PyObject *symbols = NULL;
    const int32_t *value = NULL;
    if (count > 0) {
        symbols = call_decoder(decode, stream, TABLE_SYMBOLS, count, &decoded);
        if (!symbols) return 0;
        value = decoded.buf;
    }
    int ok = 1;
    Py_ssize_t j = 0;
    for (Py_ssize_t p = lo; p < hi; p++) {
        if (w->row[p - base] < 0) {
            w->deferred[(*deferred_count)++] = p;
            continue;
        }
        const int32_t k = value[j++];
        if (k == alphabet - 1) { /* the escape: the value follows under the Laplace */
            w->deferred[(*deferred_count)++] = p;
            continue;
        }
        const double latent = floor(w->mean[p - base] + 0.5) + (double)k - (double)w->radius; /* exact */
        if (k < 0 || k >= alphabet || latent < (double)w->low_value || latent > (double)w->high_value) {
            ok = 0;
            break;
        }
        put_symbol(w, in_order, p, (int32_t)latent);
    }
    if (symbols) {
        PyBuffer_Release(&decoded);
        Py_DECREF(symbols);
    }
    if (!ok) PyErr_SetString(PyExc_ValueError, "a latent decodes outside the latent range");
    return ok;
}

/* One thread: each step's parameters, then its range decoding, step after step. The parameters of a step go
   to the start of the arrays (which then need only the longest step's length). */
static int decode_serially(const Wavefronts *w, PyObject *decode, double *network_seconds, double *decode_seconds) {
    for (Py_ssize_t b = 0; b < w->steps; b++) {
        const Py_ssize_t lo = w->start[b], hi = w->start[b + 1];
        if (hi == lo) continue;
        double begun = seconds_now();
        parameters_of(w->net, w->latent, w->near, w->position + lo, hi - lo, w->offset, w->mean_step, w->table,
                      &w->zero, &w->rows, w->mean, w->scale, w->row);
        double now = seconds_now();
        *network_seconds += now - begun;
        Py_ssize_t deferred = 0;
        if (!decode_chunk(w, decode, b % w->streams, lo, hi, lo, NULL, &deferred) ||
            !decode_laplace(w, decode, b % w->streams, w->deferred, deferred, lo, NULL))
            return 0;
        *decode_seconds += seconds_now() - now;
    }
    return 1;
}

/* Two threads (POSIX only): a helper runs the network ahead while this thread range-decodes.

   Position p of wavefront t at canvas row R reads only neighbours at rows <= R in wavefronts < t (the
   contexts are causal and t = j + (r + 1) i). Within a wavefront the order goes down the canvas's rows, one
   position per row, so those neighbours are all decoded once the decoder has passed every position of
   wavefront t - 1 at a row <= R: the helper computes p as soon as `decoded` reaches that point, and the
   decoder range-decodes whatever the helper has `computed`. The network thus runs on wavefront t's top rows
   while its bottom rows' predecessors are still being decoded, and each position's Laplace is the same as in
   decode_serially (the same arithmetic on the same, already decoded, neighbours). A step's deferred positions
   (format 7) hold `decoded` back until the step's Laplace call. */
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <stdatomic.h>
#define CAN_DECODE_AHEAD 1

#define AHEAD_CHUNK 32 /* positions the helper computes between two publications of `computed` */
#define CALL_MIN 32    /* positions the decoder waits for before a call, unless the step ends or the helper waits */

#define SPINS_BEFORE_SLEEP 16384 /* well under a millisecond of pauses; then a waiting thread sleeps until woken */

/* Each counter on its own cache line: a line written by one thread and polled by the other costs a
   transfer per write; sharing one would move it for every write of either.

   A thread waiting for the other's counter spins briefly, then sleeps on `bell` (the other thread may have
   lost its core: on a loaded machine, spinning, or yielding, while the other waits for a core cost seconds
   where a decode takes tens of milliseconds). The publisher rings the bell only when someone sleeps. No
   wake-up is lost: the sleeper registers in `sleepers` and then re-reads the counter under the lock, the
   publisher writes the counter and then reads `sleepers`, both sequentially consistent, so at least one of
   them sees the other's write (and the wait has a 1 ms bound besides). */
typedef struct {
    const Wavefronts *w;
    int16_t *symbols;                   /* the decoder's symbols in coding order; the helper scatters them */
    _Alignas(64) atomic_llong computed; /* positions [0, computed) have their Laplace (the helper writes) */
    _Alignas(64) atomic_llong decoded;  /* positions [0, decoded) have their symbols (the decoder writes) */
    _Alignas(64) atomic_int helper_waits;
    atomic_int stop;
    atomic_int sleepers;
    pthread_mutex_t lock;
    pthread_cond_t bell;
} Pipeline;

/* counter = value, waking the other thread if it sleeps. */
static void publish(Pipeline *pipe, atomic_llong *counter, long long value) {
    atomic_store_explicit(counter, value, memory_order_seq_cst);
    if (atomic_load_explicit(&pipe->sleepers, memory_order_seq_cst) > 0) {
        pthread_mutex_lock(&pipe->lock);
        pthread_cond_broadcast(&pipe->bell);
        pthread_mutex_unlock(&pipe->lock);
    }
}

/* One round of waiting for `counter` to move from `seen`: a pause, or after SPINS_BEFORE_SLEEP of them, a
   sleep until the other thread publishes (or 1 ms passes). The caller re-reads its condition after it. */
static void wait_for(Pipeline *pipe, unsigned *spins, atomic_llong *counter, long long seen) {
    if (++*spins % SPINS_BEFORE_SLEEP) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return;
    }
    pthread_mutex_lock(&pipe->lock);
    atomic_fetch_add_explicit(&pipe->sleepers, 1, memory_order_seq_cst);
    if (atomic_load_explicit(counter, memory_order_seq_cst) == seen &&
        !atomic_load_explicit(&pipe->stop, memory_order_seq_cst)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec += 1;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&pipe->bell, &pipe->lock, &until);
    }
    atomic_fetch_sub_explicit(&pipe->sleepers, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&pipe->lock);
}

/* Symbols [from, to) into the canvas, marking their dependents in `near`; returns `to`. */
static Py_ssize_t scatter(const Wavefronts *w, const int16_t *symbols, Py_ssize_t from, Py_ssize_t to) {
    for (Py_ssize_t p = from; p < to; p++) put_symbol(w, NULL, p, symbols[p]);
    return to > from ? to : from;
}

/* The helper's loop: it alone writes the canvas and `near` (from the decoder's symbols, as they come), so
   no cache line of theirs passes between the cores at every symbol. */
static void *compute_ahead(void *arg) {
    Pipeline *pipe = arg;
    const Wavefronts *w = pipe->w;
    const Py_ssize_t wavefronts = w->steps / w->streams;
    unsigned spins = 0;
    Py_ssize_t scattered = 0;
    for (Py_ssize_t t = 0; t < wavefronts; t++) {
        const Py_ssize_t lo = w->start[t * w->streams], hi = w->start[(t + 1) * w->streams];
        const Py_ssize_t previous_hi = lo;
        Py_ssize_t needed = t > 0 ? w->start[(t - 1) * w->streams] : 0; /* decoded before p may be computed */
        Py_ssize_t p = lo;
        while (p < hi) {
            const long long decoded = atomic_load_explicit(&pipe->decoded, memory_order_acquire);
            scattered = scatter(w, pipe->symbols, scattered, (Py_ssize_t)decoded);
            Py_ssize_t q = p;
            while (q < hi && q - p < AHEAD_CHUNK) {
                const int32_t row = w->position[q] / (int32_t)w->width;
                while (needed < previous_hi && w->position[needed] / (int32_t)w->width <= row) needed++;
                if (needed > decoded) break;
                q++;
            }
            if (atomic_load_explicit(&pipe->stop, memory_order_relaxed)) return NULL;
            if (q == p) {
                atomic_store_explicit(&pipe->helper_waits, 1, memory_order_relaxed);
                wait_for(pipe, &spins, &pipe->decoded, decoded);
                continue;
            }
            atomic_store_explicit(&pipe->helper_waits, 0, memory_order_relaxed);
            parameters_of(w->net, w->latent, w->near, w->position + p, q - p, w->offset, w->mean_step, w->table,
                          &w->zero, &w->rows, w->mean + p, w->scale + p, w->row + p);
            publish(pipe, &pipe->computed, q);
            p = q;
        }
    }
    /* the last wavefront's symbols */
    const Py_ssize_t n = w->start[w->steps];
    while (scattered < n && !atomic_load_explicit(&pipe->stop, memory_order_relaxed)) {
        const Py_ssize_t decoded = (Py_ssize_t)atomic_load_explicit(&pipe->decoded, memory_order_acquire);
        if (decoded == scattered) wait_for(pipe, &spins, &pipe->decoded, decoded);
        scattered = scatter(w, pipe->symbols, scattered, decoded);
    }
    return NULL;
}

/* Whether every wavefront's positions go strictly down the canvas's rows (the helper's rule needs it). */
static int rows_descend(const Wavefronts *w) {
    for (Py_ssize_t t = 0; t < w->steps / w->streams; t++)
        for (Py_ssize_t p = w->start[t * w->streams] + 1; p < w->start[(t + 1) * w->streams]; p++)
            if (w->position[p] / w->width <= w->position[p - 1] / w->width) return 0;
    return 1;
}

/* Returns -1 where the helper could not be used (nothing was decoded), else decode_serially's result. The
   network seconds are those the decoder spent waiting for the helper. */
static int decode_ahead(const Wavefronts *w, PyObject *decode, double *network_seconds, double *decode_seconds) {
    if (!rows_descend(w)) return -1;
    int16_t *symbols = malloc(sizeof(int16_t) * (size_t)(w->start[w->steps] > 0 ? w->start[w->steps] : 1));
    if (!symbols) return -1;
    Pipeline pipe = {.w = w, .symbols = symbols};
    atomic_init(&pipe.computed, 0);
    atomic_init(&pipe.decoded, 0);
    atomic_init(&pipe.helper_waits, 0);
    atomic_init(&pipe.stop, 0);
    atomic_init(&pipe.sleepers, 0);
    pthread_t helper;
    if (pthread_mutex_init(&pipe.lock, NULL) != 0) {
        free(symbols);
        return -1;
    }
    if (pthread_cond_init(&pipe.bell, NULL) != 0 || pthread_create(&helper, NULL, compute_ahead, &pipe) != 0) {
        pthread_mutex_destroy(&pipe.lock);
        free(symbols);
        return -1;
    }
    int ok = 1;
    unsigned spins = 0;
    for (Py_ssize_t b = 0; b < w->steps && ok; b++) {
        const Py_ssize_t hi = w->start[b + 1], stream = b % w->streams;
        Py_ssize_t lo = w->start[b], deferred = 0;
        while (lo < hi) {
            double begun = seconds_now();
            Py_ssize_t ready;
            for (;;) {
                ready = (Py_ssize_t)atomic_load_explicit(&pipe.computed, memory_order_acquire);
                if (ready >= hi || ready - lo >= CALL_MIN ||
                    (ready > lo && atomic_load_explicit(&pipe.helper_waits, memory_order_relaxed)))
                    break;
                wait_for(&pipe, &spins, &pipe.computed, ready);
            }
            ready = ready < hi ? ready : hi;
            double now = seconds_now();
            *network_seconds += now - begun;
            if (!decode_chunk(w, decode, stream, lo, ready, 0, pipe.symbols, &deferred)) {
                ok = 0;
                break;
            }
            /* every position before the step's first deferred one has its symbol */
            publish(&pipe, &pipe.decoded, deferred > 0 ? w->deferred[0] : ready);
            *decode_seconds += seconds_now() - now;
            lo = ready;
        }
        if (ok && deferred > 0) {
            double now = seconds_now();
            if (!decode_laplace(w, decode, stream, w->deferred, deferred, 0, pipe.symbols)) {
                ok = 0;
                break;
            }
            publish(&pipe, &pipe.decoded, hi);
            *decode_seconds += seconds_now() - now;
        }
    }
    if (!ok) {
        atomic_store_explicit(&pipe.stop, 1, memory_order_seq_cst);
        publish(&pipe, &pipe.decoded, atomic_load_explicit(&pipe.decoded, memory_order_seq_cst)); /* wake it */
    }
    pthread_join(helper, NULL); /* it has scattered every symbol (or stopped, on an error) */
    pthread_cond_destroy(&pipe.bell);
    pthread_mutex_destroy(&pipe.lock);
    free(symbols);
    return ok;
}
#else
#define CAN_DECODE_AHEAD 0
#endif

/* decode_wavefronts(canvas int16 (writable), order int32, step_starts int64, streams, offsets int64, widths,
   residual, weights, biases, limits, mean_step, scale_table, means float64, scales float64, rows int32,
   narrow_scales, model float64, radius, low_value, high_value, probabilities float64, call_means float64,
   call_scales float64, decode, canvas_width, ahead) -> (network seconds, decode seconds, whether it ran ahead).

   Wavefront after wavefront, substream after substream: the parameters of each position order[lo .. hi) into
   means, scales and rows, then their symbols from decode(stream, kind, count) (the range decoder, in
   Python): kind 0 under the table model's rows copied into probabilities[:count], kind 1 under the Laplaces
   copied into call_means[:count], call_scales[:count]. One thread writes a step's parameters at the start of
   means, scales and rows (they hold the longest step); with `ahead`, position p's are at index p (they hold
   every position). The scratch arrays hold the longest step. narrow_scales = 0 (formats 1-6): no table
   model, every symbol under its Laplace in coding order. Positions of one wavefront do not read each other,
   so this is the order the encoder's streams hold them in. ahead != 0: the network runs in a second thread
   ahead of the range decoding (decode_ahead); the symbols are the same. */
static PyObject *decode_wavefronts(PyObject *self, PyObject *args) {
    Py_buffer canvas, order, starts, offsets, widths, residual, weights, biases, limits, table, means, scales, rows,
        model, probabilities, call_means, call_scales;
    Py_ssize_t streams, canvas_width, narrow_scales, radius, low_value, high_value;
    double mean_step;
    int ahead;
    PyObject *decode;
    if (!PyArg_ParseTuple(args, "w*y*y*ny*y*y*y*y*y*dy*w*w*w*ny*nnnw*w*w*Onp", &canvas, &order, &starts, &streams,
                          &offsets, &widths, &residual, &weights, &biases, &limits, &mean_step, &table, &means,
                          &scales, &rows, &narrow_scales, &model, &radius, &low_value, &high_value, &probabilities,
                          &call_means, &call_scales, &decode, &canvas_width, &ahead))
        return NULL;
    PyObject *result = NULL;
    Network net;
    uint8_t *near = NULL;
    Py_ssize_t *lists = NULL;
    double network_seconds = 0.0, decode_seconds = 0.0;
    if (!parse_network(&net, &widths, &residual, &weights, &biases, &limits)) goto done;
    const Py_ssize_t c = net.widths[0], n = order.len / 4, samples = canvas.len / 2, entries = table.len / 8;
    const Py_ssize_t bounds = starts.len / 8, alphabet = 2 * radius + 2;
    const int64_t *start = starts.buf;
    const int64_t fractions = mean_step > 0.0 ? (int64_t)(1.0 / mean_step) : 0;
    if (offsets.len != c * 8 || scales.len != means.len || rows.len * 2 != means.len || net.high[1] >= (double)entries ||
        net.low[1] < 0.0 || streams < 1 || bounds < 1 || (bounds - 1) % streams || start[0] != 0 ||
        start[bounds - 1] != n || canvas_width < 1 || samples % canvas_width || canvas_width > INT32_MAX ||
        narrow_scales < 0 || radius < 0 || fractions < 1 || low_value > high_value ||
        (narrow_scales > 0 && model.len != narrow_scales * fractions * alphabet * 8)) {
        PyErr_SetString(PyExc_ValueError, "decode_wavefronts: order, steps, offsets, model or outputs disagree");
        goto done;
    }
    Py_ssize_t longest = 0;
    for (Py_ssize_t b = 1; b < bounds; b++) {
        if (start[b] < start[b - 1]) {
            PyErr_SetString(PyExc_ValueError, "decode_wavefronts: steps out of order");
            goto done;
        }
        longest = start[b] - start[b - 1] > longest ? start[b] - start[b - 1] : longest;
    }
    if (means.len < (ahead ? n : longest) * 8) { /* decode_ahead holds every position's; one thread a step's */
        PyErr_SetString(PyExc_ValueError, "decode_wavefronts: means and scales are too short");
        goto done;
    }
    if (call_means.len < longest * 8 || call_scales.len < longest * 8 ||
        (narrow_scales > 0 && probabilities.len < longest * alphabet * 8)) {
        PyErr_SetString(PyExc_ValueError, "decode_wavefronts: the scratch arrays are shorter than a step");
        goto done;
    }
    if (!contexts_inside(order.buf, n, offsets.buf, c, samples)) goto done;
    const int64_t *offset = offsets.buf;
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
    lists = malloc(sizeof(Py_ssize_t) * 2 * (size_t)(longest > 0 ? longest : 1));
    if (!near || !lists) { PyErr_NoMemory(); goto done; }
    Wavefronts w = {.net = &net, .latent = canvas.buf, .near = near, .position = order.buf, .start = start,
                    .steps = bounds - 1, .streams = streams, .c = c, .width = canvas_width, .offset = offset,
                    .mean_step = mean_step, .rows = {narrow_scales, fractions}, .table = table.buf,
                    .model = model.buf, .alphabet = alphabet, .radius = radius, .low_value = low_value,
                    .high_value = high_value, .mean = means.buf, .scale = scales.buf, .row = rows.buf,
                    .probabilities = probabilities.buf, .call_mean = call_means.buf, .call_scale = call_scales.buf,
                    .picked = lists, .deferred = lists + (longest > 0 ? longest : 1)};
    w.zero = zero_context(&net, mean_step, table.buf, &w.rows);
    int ok = -1;
#if CAN_DECODE_AHEAD
    if (ahead) ok = decode_ahead(&w, decode, &network_seconds, &decode_seconds);
#endif
    const int ran_ahead = ok >= 0;
    if (ok < 0) ok = decode_serially(&w, decode, &network_seconds, &decode_seconds);
    if (ok) result = Py_BuildValue("(ddO)", network_seconds, decode_seconds, ran_ahead ? Py_True : Py_False);
done:
    free(near);
    free(lists);
    PyBuffer_Release(&canvas); PyBuffer_Release(&order); PyBuffer_Release(&starts); PyBuffer_Release(&offsets);
    PyBuffer_Release(&widths); PyBuffer_Release(&residual); PyBuffer_Release(&weights);
    PyBuffer_Release(&biases); PyBuffer_Release(&limits); PyBuffer_Release(&table);
    PyBuffer_Release(&means); PyBuffer_Release(&scales); PyBuffer_Release(&rows); PyBuffer_Release(&model);
    PyBuffer_Release(&probabilities); PyBuffer_Release(&call_means); PyBuffer_Release(&call_scales);
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
     "scale_table, narrow_scales, means, scales, rows): each position's context gathered from the int16 canvas -> "
     "Laplace mean and scale (float64) and table-model row (int32, -1: none), written into the last three arrays."},
    {"wavefront_order", wavefront_order, METH_VARARGS,
     "wavefront_order(base, rows, widths, tops, width, radius, order): the coding order of the canvas's bands "
     "into order (int32), from the per-(wavefront, band) starts minus first rows in base."},
    {"decode_wavefronts", decode_wavefronts, METH_VARARGS,
     "decode_wavefronts(canvas, order, step_starts, streams, offsets, widths, residual, weights, biases, limits, "
     "mean_step, scale_table, means, scales, rows, narrow_scales, model, radius, low_value, high_value, probabilities, "
     "call_means, call_scales, decode, canvas_width, ahead): the decoder's wavefront loop; decode(stream, kind, count) "
     "range-decodes count symbols under the table rows (kind 0) or the Laplaces (kind 1) in the scratch arrays; "
     "ahead: the network in a second thread. Returns (network seconds, decode seconds, whether the thread ran)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_arm_kernels", "The integer ARM, compiled.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__arm_kernels(void) { return PyModule_Create(&module); }
